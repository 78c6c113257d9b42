export { sleep, store } from './load.js';
/** How many rows the SQL writer has had acknowledged so far. */
export interface DbCounter {
  count(): number;
}
