export { runKeyhold } from './program.js';
export type { KeyholdOptions } from './program.js';
