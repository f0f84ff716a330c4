/**
 * Writes a file so that a crash leaves either the old state or the whole new file, never a torn
 * one: the bytes go to a temporary file beside it, are fsynced, the temporary file is renamed over
 * the target, and the directory is fsynced so the rename itself survives. Mode 0600 by default:
 * what goes through here is keys, secret shares and signed records.
 */
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const file = await open(tmp, 'w', mode);
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
