/** Loads the packed MNIST digits in a page or worker (fetch + DecompressionStream). */
import { DecodeError } from '../../shared/errors.ts';
import { isGzip, type MnistData, parseMnist } from './mnist.ts';

/**
 * `url`: where public/data/mnist-10k.u8.gz is served (Vite: '/data/mnist-10k.u8.gz'). A server that
 * already decoded it (Content-Encoding: gzip) is handled too: the bytes are gunzipped only when
 * they still start with the gzip magic.
 */
export async function loadMnistBrowser(url: string | URL): Promise<MnistData> {
  const res = await fetch(url);
  if (!res.ok) throw new DecodeError('DECODE_MALFORMED', `GET ${String(url)}: HTTP ${res.status}`);
  const raw = new Uint8Array(await res.arrayBuffer());
  if (!isGzip(raw)) return parseMnist(raw);
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream('gzip'));
  return parseMnist(new Uint8Array(await new Response(stream).arrayBuffer()));
}
