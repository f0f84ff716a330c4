/**
 * @chainsafe/ssz uses Node's `Buffer` inside ByteList and BitList types. Browsers and workers have no
 * `Buffer`, so install the `buffer` package's implementation there (Node keeps its own). Importing the
 * package's file by path makes bundlers and Node resolve the npm package, never the Node built-in.
 */
import { Buffer as BufferPolyfill } from 'buffer/index.js';

const g = globalThis as { Buffer?: unknown };
if (g.Buffer === undefined) g.Buffer = BufferPolyfill;
