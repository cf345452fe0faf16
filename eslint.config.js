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
    // The owner console runs in the browser: no Node modules, and the admin credential stays in
    // memory (no web storage, no cookies), no HTML injection sinks.
    files: ['packages/console/src/app/**/*.{ts,tsx}'],
    ignores: ['packages/console/src/app/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'fs/*', 'path', 'crypto', 'child_process', 'http', 'https', 'net'], message: 'The console runs in the browser.' },
            { group: ['**/packages/*/src/**', '@keyhold/*'], message: 'The console talks to the KBS over its admin API only.' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'localStorage', message: 'Keep the admin credential in memory only.' }, { name: 'sessionStorage', message: 'Keep the admin credential in memory only.' }, { name: 'indexedDB', message: 'Keep the admin credential in memory only.' }, 'eval'],
      'no-restricted-properties': [
        'error',
        { object: 'document', property: 'cookie', message: 'Keep the admin credential in memory only.' },
        { object: 'window', property: 'localStorage', message: 'Keep the admin credential in memory only.' },
        { object: 'window', property: 'sessionStorage', message: 'Keep the admin credential in memory only.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']", message: 'No HTML injection: render text.' },
        { selector: "MemberExpression[property.name=/^(innerHTML|outerHTML)$/]", message: 'No HTML injection: render text.' },
        { selector: "CallExpression[callee.property.name='insertAdjacentHTML']", message: 'No HTML injection: render text.' },
      ],
      'no-implied-eval': 'error',
      'no-new-func': 'error',
    },
  },
  {
    // Tests poke into decoded JSON (token claims, error bodies) whose shape they assert.
    files: ['**/*.test.ts', 'e2e/**/*.ts', '**/bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
