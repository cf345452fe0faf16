import { fileURLToPath } from 'node:url';

/**
 * The built owner console: `index.html` and `assets/` (hashed script, styles), made by this
 * package's build (`pnpm run build` at the root). The KBS serves it at `/console` with a strict
 * Content-Security-Policy. The page uses no inline script or style, so it needs no CSP hashes.
 */
export const CONSOLE_ASSETS_DIR: string = fileURLToPath(new URL('../dist/web/', import.meta.url));
