/**
 * Devnet generator: a committee of supervisors that runs the Joint-Feldman DKG among itself (in one
 * process here; over the network from issue #5 on), a faucet wallet, and the genesis file that
 * records the group key, public shares and allocations. Files land in the data directory:
 *   genesis.json                    the chain's genesis (shared/chain/genesis.schema.json)
 *   supervisors/supervisor-<i>.json one supervisor's node key seed and secret BLS share (mode 0600)
 *   faucet.json                     the faucet wallet's mnemonic and address (mode 0600)
 * `node --import tsx scripts/devnet.ts [--data-dir DIR] [--supervisors N]`; idempotent: an existing
 * genesis is kept.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToHex, hexToBytes, utf8 } from '../shared/bytes.ts';
import { DEVNET_PARAMS, type Genesis, genesisToJson, parseGenesis } from '../shared/chain/genesis.ts';
import { runLocalDkg } from '../shared/crypto/dkg.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { generateMnemonic, walletFromMnemonic } from '../shared/crypto/mnemonic.ts';

export interface SupervisorKeyFile {
  index: number;
  /** Ed25519 seed of the node key (libp2p identity, message signing). */
  nodeKeySeed: string;
  /** This supervisor's secret share of the committee's BLS key (32 bytes, big-endian). */
  blsSecretShare: string;
  groupPublicKey: string;
  threshold: number;
}

export interface Devnet {
  dir: string;
  genesis: Genesis;
  supervisors: SupervisorKeyFile[];
  faucet: { mnemonic: string; address: string };
}

export async function ensureDevnet(dir: string, supervisors = 4, chainId = 'pouw-devnet'): Promise<Devnet> {
  const genesisPath = join(dir, 'genesis.json');
  if (existsSync(genesisPath)) return loadDevnet(dir);
  if (supervisors < 4 || (supervisors - 1) % 3 !== 0)
    throw new Error('supervisors must be 3f + 1 with f ≥ 1');
  const f = (supervisors - 1) / 3;
  const t = 2 * f + 1;
  mkdirSync(join(dir, 'supervisors'), { recursive: true });
  const results = runLocalDkg(supervisors, t, { sessionId: utf8(`${chainId}/committee/0`) });
  const first = results[0]!;
  if (results.some((r) => bytesToHex(r.groupPublicKey) !== bytesToHex(first.groupPublicKey))) {
    throw new Error('DKG parties disagree on the group key');
  }
  const keyFiles: SupervisorKeyFile[] = [];
  const members: Genesis['committee']['members'] = [];
  for (const r of results) {
    const seed = randomBytes(32);
    members.push({
      nodeKey: await nobleEd25519.getPublicKey(seed),
      blsPublicShare: first.publicShares[r.index - 1]!,
    });
    keyFiles.push({
      index: r.index,
      nodeKeySeed: bytesToHex(seed),
      blsSecretShare: bytesToHex(r.secretShare.secretKey),
      groupPublicKey: bytesToHex(r.groupPublicKey),
      threshold: t,
    });
  }
  const mnemonic = generateMnemonic();
  const wallet = await walletFromMnemonic(mnemonic);
  const genesis: Genesis = {
    chainId,
    time: BigInt(Date.now()),
    params: DEVNET_PARAMS,
    committee: { groupPublicKey: first.groupPublicKey, threshold: t, members },
    allocations: [{ address: wallet.primary.address, value: 21_000_000_0000_0000n }],
  };
  for (const k of keyFiles) {
    writeFileSync(join(dir, 'supervisors', `supervisor-${k.index}.json`), `${JSON.stringify(k, null, 2)}\n`, {
      mode: 0o600,
    });
  }
  writeFileSync(
    join(dir, 'faucet.json'),
    `${JSON.stringify({ mnemonic, address: wallet.primary.address }, null, 2)}\n`,
    { mode: 0o600 },
  );
  writeFileSync(genesisPath, `${JSON.stringify(genesisToJson(genesis), null, 2)}\n`);
  return loadDevnet(dir);
}

export function loadDevnet(dir: string): Devnet {
  const genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')));
  const supervisors = genesis.committee.members.map(
    (_, i) =>
      JSON.parse(
        readFileSync(join(dir, 'supervisors', `supervisor-${i + 1}.json`), 'utf8'),
      ) as SupervisorKeyFile,
  );
  const faucet = JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8')) as Devnet['faucet'];
  return { dir, genesis, supervisors, faucet };
}

export function shareOf(k: SupervisorKeyFile): { index: number; secretKey: Uint8Array } {
  return { index: k.index, secretKey: hexToBytes(k.blsSecretShare) };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const opt = (n: string) => {
    const i = args.indexOf(`--${n}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const dir = opt('data-dir') ?? join(import.meta.dirname, '..', '.data', 'devnet');
  const devnet = await ensureDevnet(dir, Number(opt('supervisors') ?? 4));
  console.log(
    `devnet ${devnet.genesis.chainId} in ${dir}: ${devnet.supervisors.length} supervisors, faucet ${devnet.faucet.address}`,
  );
}
