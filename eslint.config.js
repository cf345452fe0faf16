import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.keyhold/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      // Packages are sealed: import another package by its public name, never its src/.
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/packages/*/src/**', '@keyhold/*/src/**', '../../*/src/**', '../../../*/src/**'], message: 'Import workspace packages by their public name (package.json exports).' }] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The verifier is pure: no I/O, no native code.
    files: ['packages/verifier/src/**/*.ts'],
    ignores: ['packages/verifier/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http', 'child_process', 'node:child_process', 'koffi', 'undici'],
          patterns: [{ group: ['**/packages/*/src/**', '@keyhold/*/src/**'], message: 'Import workspace packages by their public name.' }],
        },
      ],
      'no-restricted-globals': ['error', 'process', 'fetch'],
    },
  },
  {
    // Tests poke into decoded JSON (token claims, error bodies) whose shape they assert.
    files: ['**/*.test.ts', 'e2e/**/*.ts', '**/bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
