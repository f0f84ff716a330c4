/**
 * Test helpers for the networked DKG: deterministic committees, a run of n parties over the
 * in-memory network, frame rewriting for Byzantine members (re-signed with their own key, so the
 * forgery is one a real faulty member could produce), and the end-to-end check that the honest
 * results agree and their shares sign under the group key.
 */
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { bytesToHex, utf8 } from '../../shared/bytes.ts';
import * as bls from '../../shared/crypto/bls.ts';
import {
  type DkgFrame,
  type DkgWireMessage,
  decodeDkgFrame,
  dkgDigest,
  encodeDkgBody,
  encodeDkgFrame,
  openDkgMessage,
} from '../../shared/crypto/dkg-wire.ts';
import { combine, partialSign } from '../../shared/crypto/threshold-bls.ts';
import { MemoryNetwork, type MemoryNetworkOptions } from './channel.ts';
import { type DkgTimeouts, type NetworkDkgResult, runNetworkDkg } from './run.ts';

export const CHAIN_ID = 'pouw-dkg-test';

export interface Member {
  index: number;
  seed: Uint8Array;
  nodeKey: Uint8Array;
}

export function makeCommittee(n: number, label: string): Member[] {
  return Array.from({ length: n }, (_, k) => {
    const seed = sha256(utf8(`${label}/node-key/${k + 1}`));
    return { index: k + 1, seed, nodeKey: nobleCurve.getPublicKey(seed) };
  });
}

/** Deterministic randomness for a party's polynomial (tests only). */
export function seededRandom(label: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) {
      out.set(sha256(utf8(`${label}/${counter++}`)).subarray(0, Math.min(32, n - o)), o);
    }
    return out;
  };
}

export interface MemoryRunOptions extends MemoryNetworkOptions {
  t: number;
  label: string;
  /** Members that never start (silent). */
  silent?: number[];
  timeouts?: Partial<DkgTimeouts>;
}

export interface MemoryRun {
  committee: Member[];
  results: Map<number, NetworkDkgResult>;
  failures: Map<number, unknown>;
  network: MemoryNetwork;
}

export const FAST_TIMEOUTS: DkgTimeouts = { deal: 4000, ack: 3000, reveal: 3000, confirm: 4000, linger: 300 };

/** Runs every non-silent member to completion (success or typed failure). */
export async function runMemoryDkg(n: number, o: MemoryRunOptions): Promise<MemoryRun> {
  const committee = makeCommittee(n, o.label);
  const network = new MemoryNetwork(n, o);
  const results = new Map<number, NetworkDkgResult>();
  const failures = new Map<number, unknown>();
  const sessionId = utf8(`${o.label}/session`);
  try {
    await Promise.all(
      committee
        .filter((m) => !(o.silent ?? []).includes(m.index))
        .map(async (m) => {
          try {
            const r = await runNetworkDkg({
              chainId: CHAIN_ID,
              self: { index: m.index, nodeKeySeed: m.seed },
              committee: committee.map((c) => c.nodeKey),
              threshold: o.t,
              sessionId,
              channel: network.channel(m.index),
              ed25519: nodeCryptoEd25519,
              timeouts: { ...FAST_TIMEOUTS, ...o.timeouts },
              randomBytes: seededRandom(`${o.label}/poly/${m.index}`),
            });
            results.set(m.index, r);
          } catch (e) {
            failures.set(m.index, e);
          }
        }),
    );
  } finally {
    network.close();
  }
  return { committee, results, failures, network };
}

/** Re-signs a message as `author` would (noble, synchronous: interceptors are synchronous). */
export function resign(session: Uint8Array, msg: DkgWireMessage, seed: Uint8Array) {
  const { kind, body } = encodeDkgBody(session, msg);
  return { kind, body, signature: nobleCurve.sign(dkgDigest(CHAIN_ID, kind, body), seed) };
}

/**
 * Rewrites the signed message inside send/echo/direct frames: `edit` returns the replacement
 * message, the same object to keep it, or null to drop the frame. READY frames pass unchanged.
 */
export function rewriteFrame(
  bytes: Uint8Array,
  seed: Uint8Array,
  edit: (msg: DkgWireMessage, frameKind: DkgFrame['kind']) => DkgWireMessage | null,
): Uint8Array[] {
  const frame = decodeDkgFrame(bytes);
  if (frame.kind === 'ready') return [bytes];
  const opened = openDkgMessage(CHAIN_ID, frame.signed);
  const next = edit(opened.message, frame.kind);
  if (next === null) return [];
  if (next === opened.message) return [bytes];
  return [encodeDkgFrame({ kind: frame.kind, signed: resign(opened.session, next, seed) })];
}

/** Adds 1 to a 32-byte big-endian share (a wrong share, still a valid scalar). */
export function bumpShare(share: Uint8Array): Uint8Array {
  const out = share.slice();
  for (let i = 31; i >= 0; i--) {
    out[i] = (out[i]! + 1) & 0xff;
    if (out[i] !== 0) break;
  }
  return out;
}

/**
 * Asserts-by-throwing that the members in `honest` all succeeded with one transcript, group key,
 * QUAL and set of public shares, that each secret share matches its public share, and that a
 * threshold signature from `signers` verifies under the group key. Returns one honest result.
 */
export function checkHonestAgreement(
  run: MemoryRun | Map<number, NetworkDkgResult>,
  honest: number[],
  signers: number[],
) {
  const results = run instanceof Map ? run : run.results;
  const first = results.get(honest[0]!);
  if (first === undefined) {
    const failure = run instanceof Map ? undefined : run.failures.get(honest[0]!);
    throw new Error(`member ${honest[0]} has no result: ${String(failure)}`);
  }
  for (const i of honest) {
    const r = results.get(i);
    if (r === undefined) throw new Error(`member ${i} has no result`);
    if (bytesToHex(r.transcriptHash) !== bytesToHex(first.transcriptHash))
      throw new Error(`member ${i} differs`);
    if (bytesToHex(r.groupPublicKey) !== bytesToHex(first.groupPublicKey))
      throw new Error('group keys differ');
    if (r.qualified.join() !== first.qualified.join()) throw new Error('QUAL differs');
    if (r.publicShares.map(bytesToHex).join() !== first.publicShares.map(bytesToHex).join())
      throw new Error('public shares differ');
    if (bytesToHex(bls.getPublicKey(r.secretShare.secretKey)) !== bytesToHex(r.publicShares[i - 1]!))
      throw new Error(`member ${i}'s secret share does not match its public share`);
  }
  const message = utf8('finality of height 1');
  const partials = signers.map((i) => partialSign(results.get(i)!.secretShare, message));
  const signature = combine(partials, first.t, { publicShares: first.publicShares, message });
  if (!bls.verify(first.groupPublicKey, message, signature))
    throw new Error('threshold signature does not verify');
  return first;
}
