/**
 * Test fixtures for the consensus state machine (Node and Chromium): values, unsigned-to-"signed"
 * messages with placeholder signatures (the core never checks signatures: the boundary does), and a
 * tiny synchronous, fault-free network that drives n cores to a number of heights. Not used by
 * production code; the fault-injecting simulator is tests/sim/consensus/.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../bytes.ts';
import type { Committee, CommitteeMember } from '../chain/types.ts';
import { type DealtKeys, dealShares } from '../crypto/threshold-bls.ts';
import { quorum } from './committee.ts';
import { type SyncSigningKeys, syncSigningKeys, type UnsignedMessage } from './messages.ts';
import {
  type Effect,
  type Input,
  initialState,
  type Step,
  step,
  type TendermintParams,
  type TendermintState,
  type WalRecord,
} from './tendermint.ts';
import type { ConsensusMessage, ConsensusValue, SignedVote, Vote } from './types.ts';
import { VoteType } from './types.ts';

export const TEST_CHAIN = 'pouw-consensus-test';

export const TEST_TIMEOUTS: Record<Step, { baseMs: number; deltaMs: number }> = {
  propose: { baseMs: 3000, deltaMs: 500 },
  prevote: { baseMs: 1000, deltaMs: 250 },
  precommit: { baseMs: 1000, deltaMs: 250 },
};

export function testParams(self: number, n = 4): TendermintParams {
  return { chainId: TEST_CHAIN, n, self, timeouts: TEST_TIMEOUTS, roundWindow: 8 };
}

/** A distinct value per k (k < 255). */
export function testValue(k: number): ConsensusValue {
  return {
    blockHash: new Uint8Array(32).fill(k),
    historyRoot: new Uint8Array(32).fill(255 - k),
    payload: new Uint8Array([k, k]),
  };
}

/** The message with placeholder signatures (and a placeholder BLS partial where one belongs). */
export function fakeSign(m: UnsignedMessage): ConsensusMessage {
  if (m.kind === 'proposal')
    return { kind: 'proposal', signed: { proposal: m.proposal, signature: new Uint8Array(64) } };
  const partial = m.vote.type === VoteType.precommit && m.vote.valueId.length > 0 ? 96 : 0;
  return {
    kind: 'vote',
    signed: { vote: m.vote, signature: new Uint8Array(64), blsPartial: new Uint8Array(partial) },
  };
}

export function fakeVote(vote: Vote): SignedVote {
  return (fakeSign({ kind: 'vote', vote }) as Extract<ConsensusMessage, { kind: 'vote' }>).signed;
}

export function inputOf(m: ConsensusMessage): Input {
  if (m.kind === 'proposal') return { type: 'proposal', signed: m.signed };
  if (m.kind === 'vote') return { type: 'vote', signed: m.signed };
  return { type: 'commit', commit: m.commit };
}

export interface MiniNetRun {
  states: TendermintState[];
  /** Per node, per step: the effects of that step. */
  steps: Effect[][][];
  wal: WalRecord[][];
  /** Per node: decided value ids (hex) by height. */
  decided: Map<bigint, string>[];
}

/**
 * Drives n validators to `heights` decisions: messages are delivered to everyone (sender included)
 * in FIFO order; when none is in flight the earliest timer fires. `silent` members run but their
 * messages are dropped. getValue returns testValue(height·10 + round) and valid(v) is true.
 */
export function runMiniNet(n: number, heights: number, silent: readonly number[] = []): MiniNetRun {
  const states = Array.from({ length: n }, (_, i) => initialState(testParams(i, n), 1n));
  const steps: Effect[][][] = states.map(() => []);
  const wal: WalRecord[][] = states.map(() => []);
  const decided: Map<bigint, string>[] = states.map(() => new Map());
  const queue: { to: number; input: Input }[] = [];
  let timers: { at: number; to: number; input: Input }[] = [];
  let now = 0;
  const run = (i: number, input: Input) => {
    const r = step(states[i]!, input);
    states[i] = r.state;
    steps[i]!.push(r.effects);
    for (const e of r.effects) {
      switch (e.type) {
        case 'persist':
          wal[i]!.push(e.record);
          break;
        case 'broadcast': {
          const m = fakeSign(e.message);
          const targets = silent.includes(i) ? [i] : [...Array(n).keys()];
          for (const to of targets) queue.push({ to, input: inputOf(m) });
          break;
        }
        case 'schedule-timeout':
          timers.push({
            at: now + e.delayMs,
            to: i,
            input: { type: 'timeout', height: e.height, round: e.round, step: e.step },
          });
          break;
        case 'request-value':
          queue.push({
            to: i,
            input: {
              type: 'value',
              height: e.height,
              round: e.round,
              value: testValue(Number(e.height) * 10 + e.round),
            },
          });
          break;
        case 'validate-value':
          queue.push({
            to: i,
            input: { type: 'validity', height: e.height, valueId: e.valueId, valid: true },
          });
          break;
        case 'decide':
          decided[i]!.set(
            e.height,
            Array.from(e.commit[0]!.vote.valueId, (b) => b.toString(16).padStart(2, '0')).join(''),
          );
          break;
        default:
          break;
      }
    }
  };
  for (let i = 0; i < n; i++) run(i, { type: 'start' });
  const done = () => decided.every((d, i) => silent.includes(i) || d.size >= heights);
  for (let guard = 0; guard < 200_000 && !done(); guard++) {
    const next = queue.shift();
    if (next) {
      run(next.to, next.input);
      continue;
    }
    timers.sort((a, b) => a.at - b.at);
    const t = timers.shift();
    if (!t) break;
    now = t.at;
    run(t.to, t.input);
    timers = timers.filter((x) => x.at >= now);
  }
  return { states, steps, wal, decided };
}

/** A committee with real keys: Ed25519 node keys and a dealt threshold-BLS key (t = quorum). */
export interface RealCommittee {
  committee: Committee;
  keys: SyncSigningKeys[];
  dealt: DealtKeys;
}

function seededBytes(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32)
      out.set(sha256(utf8(`${seed}/${counter++}`)).subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

export function realCommittee(n = 4, label = 'pouw-consensus-test'): RealCommittee {
  const dealt = dealShares(n, quorum(n), { randomBytes: seededBytes(`${label}/bls`) });
  const members: CommitteeMember[] = [];
  const keys: SyncSigningKeys[] = [];
  for (let i = 0; i < n; i++) {
    const seed = sha256(utf8(`${label}/ed25519/${i}`));
    members.push({ nodeKey: ed25519.getPublicKey(seed), blsPublicShare: dealt.publicShares[i]! });
    keys.push(syncSigningKeys(seed, dealt.shares[i]!));
  }
  return { committee: { groupPublicKey: dealt.groupPublicKey, threshold: quorum(n), members }, keys, dealt };
}
