/**
 * The relay's libp2p identity, kept in `<dataDir>/node-key` (libp2p's protobuf private-key encoding,
 * mode 0600). Browsers are configured with the relay's full multiaddr, peer id included, so the key
 * must survive restarts: it is created once, written atomically, and loaded on every later start.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { writeFileDurable } from '../node-common/durable-file.ts';
import { RelayError } from './errors.ts';

export const NODE_KEY_FILE = 'node-key';

export async function loadOrCreateNodeKey(dataDir: string): Promise<{ key: PrivateKey; created: boolean }> {
  const path = join(dataDir, NODE_KEY_FILE);
  if (existsSync(path)) {
    try {
      return { key: privateKeyFromProtobuf(readFileSync(path)), created: false };
    } catch (e) {
      throw new RelayError(
        'RELAY_KEY_INVALID',
        `${path} does not hold a libp2p private key: ${(e as Error).message}`,
        'REJECT',
        {
          path,
        },
      );
    }
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = await generateKeyPair('Ed25519');
  // Durable before visible: a crash leaves either no key file or a whole one.
  await writeFileDurable(path, privateKeyToProtobuf(key));
  return { key, created: true };
}
