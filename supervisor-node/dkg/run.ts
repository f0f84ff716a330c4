/**
 * The committee-start DKG over the network: drives the pure Joint-Feldman state machine
 * (shared/crypto/dkg.ts, in its `reliableBroadcast` mode) through deal → ack → reveal → finalize
 * over a DkgChannel, then has the parties confirm the outcome.
 *
 * - Every message this party authors is signed with its node key (shared/crypto/dkg-wire.ts).
 *   Deals, acks and reveals go through Bracha reliable broadcast (broadcast.ts), so an
 *   equivocating dealer cannot give two honest parties different commitments and a late joiner
 *   receives everything the others delivered. Shares and confirmations go point to point (the
 *   channel is confidential and authenticated).
 * - A phase ends as soon as everything it waits for has arrived (all deals and shares; all acks;
 *   a reveal from every dealer with complaints), or when its timeout runs out: members that start
 *   late are waited for, silent ones are not. Messages for a later phase are kept until it starts;
 *   messages for an earlier one are ignored; repeats change nothing.
 * - Confirm: each party sends its signed transcript hash (QUAL, their commitment hashes, the group
 *   key). The run succeeds once max(t, ⌈(n + f + 1)/2⌉) parties, itself included, confirmed the
 *   same hash: two such quorums share an honest party, so every party that succeeds holds the same
 *   group key, and at least t members hold shares of it. A party outvoted on its hash fails with
 *   DKG_NO_AGREEMENT instead of using a key the committee does not share.
 * - After success the party lingers (keeps echoing and answering) until all n confirmed or
 *   `timeouts.linger` passed, so slower members can still finish.
 *
 * Nothing is persisted here; the caller stores the result. Timing assumption, as for any JF-DKG:
 * honest members' messages arrive within the phase timeouts. A Byzantine member that times its
 * messages to land exactly at a phase boundary can make honest views differ; the confirmation
 * step turns that into a failed run (retry with a new session id), never into a split key.
 */
import { bytesToHex, equalBytes } from '../../shared/bytes.ts';
import type { RandomBytes } from '../../shared/crypto/bls.ts';
import {
  commitmentHash,
  type DkgAck,
  type DkgMessage,
  type DkgResult,
  JointFeldmanDkg,
} from '../../shared/crypto/dkg.ts';
import {
  type DkgFrame,
  DkgKind,
  type DkgWireMessage,
  decodeDkgFrame,
  dkgSessionTag,
  dkgTranscriptHash,
  encodeDkgFrame,
  type OpenedDkgMessage,
  openDkgMessage,
  signDkgMessage,
  verifyDkgMessage,
} from '../../shared/crypto/dkg-wire.ts';
import type { Ed25519 } from '../../shared/crypto/ed25519.ts';
import { DkgError, isPouwError } from '../../shared/errors.ts';
import { type BroadcastOutput, broadcastQuorums, ReliableBroadcast } from './broadcast.ts';
import type { DkgChannel, DkgIncoming } from './channel.ts';

export interface DkgTimeouts {
  /** From the start until this party acks with whatever deals and shares it has (covers late starters). */
  deal: number;
  /** From this party's ack until it reveals with the acks it has. */
  ack: number;
  /** From this party's reveal until it finalizes with the reveals it has. */
  reveal: number;
  /** From finalizing until enough matching confirmations must be in (else DKG_TIMEOUT). */
  confirm: number;
  /** After success: keep serving the others until all n confirmed, at most this long. */
  linger: number;
}

export const DEFAULT_DKG_TIMEOUTS: Readonly<DkgTimeouts> = Object.freeze({
  deal: 30_000,
  ack: 10_000,
  reveal: 10_000,
  confirm: 15_000,
  linger: 5_000,
});

export interface NetworkDkgOptions {
  /** Binds every signature and hash to one chain (domain `pouw/dkg/v1`). */
  chainId: string;
  self: { index: number; nodeKeySeed: Uint8Array };
  /** Node public keys (Ed25519, 32 bytes) of the committee; member i is committee[i − 1]. */
  committee: readonly Uint8Array[];
  threshold: number;
  /** Unique per run (e.g. `${chainId}/committee/${epoch}`); at most 1024 bytes. */
  sessionId: Uint8Array;
  channel: DkgChannel;
  ed25519: Ed25519;
  timeouts?: Partial<DkgTimeouts>;
  signal?: AbortSignal;
  randomBytes?: RandomBytes;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

/** Misbehaviour this party saw, attributed to a member (by channel authentication or signature). */
export interface DkgFault {
  party: number;
  code: string;
  reason: string;
}

export interface NetworkDkgResult extends DkgResult {
  /** The committee's node keys, member i at [i − 1] (what genesis records beside the shares). */
  committee: Uint8Array[];
  /** dkgTranscriptHash of the outcome; the same at every party that succeeded. */
  transcriptHash: Uint8Array;
  /** Members whose signed confirmation named this transcript, ascending (self included). */
  confirmedBy: number[];
  faults: DkgFault[];
}

const BROADCAST_KINDS: ReadonlySet<number> = new Set([DkgKind.deal, DkgKind.ack, DkgKind.reveal]);
const MAX_FAULTS = 256;
const TIMEOUT = Symbol('timeout');

type Phase = 'deal' | 'ack' | 'reveal' | 'confirm' | 'linger';

/** Runs one DKG to the end; throws DkgError (codes in the module comment) when it cannot succeed. */
export async function runNetworkDkg(options: NetworkDkgOptions): Promise<NetworkDkgResult> {
  const run = new NetworkDkgRun(options);
  await run.checkParameters();
  return run.run();
}

class NetworkDkgRun {
  private readonly n: number;
  private readonly index: number;
  private readonly timeouts: DkgTimeouts;
  private readonly session: Uint8Array;
  private readonly dkg: JointFeldmanDkg;
  private readonly rbc: ReliableBroadcast;
  private readonly confirmQuorum: number;
  private readonly verified = new Set<string>();
  /** Commitments the state machine accepted, by dealer (for the transcript and fault checks). */
  private readonly commitments = new Map<number, Uint8Array[]>();
  private readonly acks = new Map<number, DkgAck>();
  private readonly confirms = new Map<number, string>();
  private readonly faults: DkgFault[] = [];
  private phase: Phase = 'deal';
  private deadline = 0;
  private outcome: { result: DkgResult; transcriptHash: Uint8Array } | null = null;

  constructor(private readonly o: NetworkDkgOptions) {
    this.n = o.committee.length;
    this.index = o.self.index;
    this.timeouts = { ...DEFAULT_DKG_TIMEOUTS, ...o.timeouts };
    this.session = dkgSessionTag(o.chainId, o.sessionId);
    this.dkg = new JointFeldmanDkg({
      n: this.n,
      t: o.threshold,
      index: this.index,
      sessionId: o.sessionId,
      reliableBroadcast: true,
      ...(o.randomBytes ? { randomBytes: o.randomBytes } : {}),
    });
    this.rbc = new ReliableBroadcast(this.n, this.index, this.session);
    const { echo } = broadcastQuorums(this.n);
    this.confirmQuorum = Math.max(o.threshold, echo);
  }

  async checkParameters(): Promise<void> {
    const { committee, channel, self } = this.o;
    const bad = (message: string) => new DkgError('DKG_BAD_PARAMETERS', message, 'REJECT');
    if (!committee.every((k) => k instanceof Uint8Array && k.length === 32))
      throw bad('committee keys must be 32-byte Ed25519 public keys');
    if (new Set(committee.map((k) => bytesToHex(k))).size !== this.n)
      throw bad('committee keys must be distinct');
    if (channel.self !== this.index || channel.n !== this.n)
      throw bad(`channel is for member ${channel.self} of ${channel.n}, not ${this.index} of ${this.n}`);
    const own = await this.o.ed25519.getPublicKey(self.nodeKeySeed);
    if (!equalBytes(own, committee[this.index - 1]!))
      throw bad('node key seed does not match committee entry');
  }

  async run(): Promise<NetworkDkgResult> {
    const { signal } = this.o;
    if (signal?.aborted) throw aborted();
    this.log('dkg-start', { n: this.n, t: this.o.threshold });
    this.deadline = now() + this.timeouts.deal;
    const out = this.dkg.deal();
    const deal = await this.sign(out.broadcast);
    this.commitments.set(this.index, out.broadcast.commitments);
    for (const share of out.direct) {
      const signed = await this.sign(share);
      this.o.channel.send(share.recipient, encodeDkgFrame({ kind: 'direct', signed: signed.signed }));
    }
    this.emit(this.rbc.start(deal));

    const iterator = this.o.channel.incoming[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<DkgIncoming>> | null = null;
    try {
      for (;;) {
        const finished = await this.advance();
        if (finished !== null) return finished;
        pending ??= iterator.next();
        const r = await race(pending, Math.max(0, this.deadline - now()), signal);
        if (r === TIMEOUT) continue;
        pending = null;
        if (r.done) throw new DkgError('DKG_ABORTED', 'the channel closed during the DKG', 'IGNORE');
        await this.receive(r.value);
      }
    } finally {
      await iterator.return?.();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Phases

  /** Moves through every phase whose end condition holds; returns the result once done. */
  private async advance(): Promise<NetworkDkgResult | null> {
    for (;;) {
      const expired = now() >= this.deadline;
      const missing = this.dkg.missing();
      switch (this.phase) {
        case 'deal':
          if (!expired && (missing.deals.length > 0 || missing.shares.length > 0)) return null;
          this.enter('ack', this.timeouts.ack, {
            missingDeals: missing.deals,
            missingShares: missing.shares,
          });
          this.emit(this.rbc.start(await this.sign(this.dkg.ack())));
          continue;
        case 'ack':
          if (!expired && missing.acks.length > 0) return null;
          this.enter('reveal', this.timeouts.reveal, { missingAcks: missing.acks });
          {
            const reveal = this.dkg.reveal();
            if (reveal !== null) this.emit(this.rbc.start(await this.sign(reveal)));
          }
          continue;
        case 'reveal':
          if (!expired && missing.reveals.length > 0) return null;
          this.enter('confirm', this.timeouts.confirm, { missingReveals: missing.reveals });
          await this.finalize();
          continue;
        case 'confirm': {
          const mine = bytesToHex(this.outcome!.transcriptHash);
          const matching = [...this.confirms.values()].filter((h) => h === mine).length;
          if (matching >= this.confirmQuorum) {
            this.enter('linger', this.timeouts.linger, { confirmedBy: this.confirmedBy() });
            continue;
          }
          if (matching + (this.n - this.confirms.size) < this.confirmQuorum) {
            throw new DkgError(
              'DKG_NO_AGREEMENT',
              'too many members confirmed a different outcome',
              'IGNORE',
              {
                confirmations: Object.fromEntries(this.confirms),
                mine,
              },
            );
          }
          if (!expired) return null;
          throw new DkgError(
            'DKG_TIMEOUT',
            `only ${matching} of ${this.confirmQuorum} confirmations`,
            'IGNORE',
            {
              confirmedBy: this.confirmedBy(),
            },
          );
        }
        case 'linger':
          if (!expired && this.confirms.size < this.n) return null;
          this.log('dkg-done', { confirmations: this.confirms.size });
          return {
            ...this.outcome!.result,
            committee: this.o.committee.map((k) => k.slice()),
            transcriptHash: this.outcome!.transcriptHash,
            confirmedBy: this.confirmedBy(),
            faults: this.faults.slice(),
          };
      }
    }
  }

  private enter(phase: Phase, timeout: number, fields: Record<string, unknown>): void {
    this.log('dkg-phase', { phase, ...fields });
    this.phase = phase;
    this.deadline = now() + timeout;
  }

  private async finalize(): Promise<void> {
    const result = this.dkg.finalize();
    // A false commitment hash no longer disqualifies anyone, but it is provable: name the liar.
    for (const [from, ack] of this.acks) {
      ack.commitmentHashes.forEach((h, k) => {
        const dealt = this.commitments.get(k + 1);
        if (h.length === 32 && dealt !== undefined) {
          if (!equalBytes(h, commitmentHash(this.o.sessionId, k + 1, dealt))) {
            this.fault(from, 'DKG_BAD_MESSAGE', `ack names commitments member ${k + 1} never broadcast`);
          }
        }
      });
    }
    const transcriptHash = dkgTranscriptHash(this.o.chainId, {
      session: this.session,
      n: this.n,
      t: this.o.threshold,
      committee: [...this.o.committee],
      qualified: result.qualified,
      commitmentHashes: result.qualified.map((d) =>
        commitmentHash(this.o.sessionId, d, this.commitments.get(d)!),
      ),
      groupPublicKey: result.groupPublicKey,
    });
    this.outcome = { result, transcriptHash };
    this.confirms.set(this.index, bytesToHex(transcriptHash));
    const confirm = await this.sign({ type: 'confirm', from: this.index, transcriptHash });
    const bytes = encodeDkgFrame({ kind: 'direct', signed: confirm.signed });
    for (let j = 1; j <= this.n; j++) if (j !== this.index) this.o.channel.send(j, bytes);
    this.log('dkg-finalized', { qualified: result.qualified, transcriptHash: bytesToHex(transcriptHash) });
  }

  private confirmedBy(): number[] {
    const mine = this.outcome === null ? '' : bytesToHex(this.outcome.transcriptHash);
    return [...this.confirms]
      .filter(([, h]) => h === mine)
      .map(([p]) => p)
      .sort((a, b) => a - b);
  }

  // ------------------------------------------------------------------------------------------
  // Incoming frames

  private async receive({ fromIndex, bytes }: DkgIncoming): Promise<void> {
    let frame: DkgFrame;
    try {
      frame = decodeDkgFrame(bytes);
    } catch (e) {
      this.faultFrom(fromIndex, e);
      return;
    }
    if (frame.kind === 'ready') {
      const { ready } = frame;
      if (!equalBytes(ready.session, this.session)) return;
      if (!BROADCAST_KINDS.has(ready.kind) || ready.author < 1 || ready.author > this.n) {
        this.fault(fromIndex, 'DKG_BAD_MESSAGE', 'READY for no broadcast instance');
        return;
      }
      this.emit(this.rbc.onReady(fromIndex, ready.kind, ready.author, ready.digest));
      return;
    }
    let opened: OpenedDkgMessage;
    try {
      opened = openDkgMessage(this.o.chainId, frame.signed);
    } catch (e) {
      this.faultFrom(fromIndex, e);
      return;
    }
    if (!equalBytes(opened.session, this.session)) return;
    if (opened.author < 1 || opened.author > this.n) {
      this.fault(fromIndex, 'DKG_UNKNOWN_PARTY', `message by unknown member ${opened.author}`);
      return;
    }
    if (!(await this.checkSignature(opened))) {
      this.fault(
        fromIndex,
        'DKG_BAD_SIGNATURE',
        `${opened.message.type} not signed by member ${opened.author}`,
      );
      return;
    }
    const broadcastKind = BROADCAST_KINDS.has(opened.signed.kind);
    if (frame.kind === 'echo') {
      if (!broadcastKind) this.fault(fromIndex, 'DKG_BAD_MESSAGE', 'ECHO of a point-to-point message');
      else this.emit(this.rbc.onEcho(fromIndex, opened));
      return;
    }
    if (opened.author !== fromIndex) {
      this.fault(fromIndex, 'DKG_BAD_MESSAGE', `${frame.kind} of member ${opened.author}'s message`);
      return;
    }
    if (frame.kind === 'send') {
      if (!broadcastKind) this.fault(fromIndex, 'DKG_BAD_MESSAGE', 'SEND of a point-to-point message');
      else this.emit(this.rbc.onSend(fromIndex, opened));
      return;
    }
    // direct
    const msg = opened.message;
    if (msg.type === 'confirm') this.onConfirm(fromIndex, msg.transcriptHash);
    else if (msg.type === 'share') this.feed(fromIndex, msg);
    else this.fault(fromIndex, 'DKG_BAD_MESSAGE', `${msg.type} sent point to point`);
  }

  private onConfirm(from: number, transcriptHash: Uint8Array): void {
    const hash = bytesToHex(transcriptHash);
    const previous = this.confirms.get(from);
    if (previous === undefined) this.confirms.set(from, hash);
    else if (previous !== hash) this.fault(from, 'DKG_EQUIVOCATION', 'two different signed confirmations');
  }

  private async checkSignature(opened: OpenedDkgMessage): Promise<boolean> {
    const key = bytesToHex(opened.digest);
    if (this.verified.has(key)) return true;
    const ok = await verifyDkgMessage(this.o.ed25519, this.o.committee[opened.author - 1]!, opened);
    if (ok) this.verified.add(key);
    return ok;
  }

  /** Sends the broadcast's frames, feeds its deliveries to the state machine, records its faults. */
  private emit(out: BroadcastOutput): void {
    for (const frame of out.toAll) {
      const bytes = encodeDkgFrame(frame);
      for (let j = 1; j <= this.n; j++) if (j !== this.index) this.o.channel.send(j, bytes);
    }
    for (const f of out.faults) this.fault(f.party, f.code, f.reason);
    for (const opened of out.delivered) this.feed(opened.author, opened.message);
  }

  /** One message into the state machine; its rejections are the author's faults, repeats are not. */
  private feed(author: number, msg: DkgWireMessage): void {
    if (msg.type === 'confirm') return;
    try {
      this.dkg.handle(msg as DkgMessage);
      this.accepted(msg);
    } catch (e) {
      if (isPouwError(e) && e.detail['recorded'] === true) this.accepted(msg);
      if (isPouwError(e) && e.verdict === 'REJECT') this.fault(author, e.code, e.message);
      else if (!isPouwError(e)) throw e;
    }
  }

  private accepted(msg: DkgMessage): void {
    if (msg.type === 'deal') this.commitments.set(msg.dealer, msg.commitments);
    if (msg.type === 'ack') this.acks.set(msg.from, msg);
  }

  // ------------------------------------------------------------------------------------------

  private sign(msg: DkgWireMessage): Promise<OpenedDkgMessage> {
    return signDkgMessage(this.o.ed25519, this.o.self.nodeKeySeed, this.o.chainId, this.session, msg);
  }

  private faultFrom(party: number, e: unknown): void {
    if (!isPouwError(e)) throw e;
    this.fault(party, e.code, e.message);
  }

  private fault(party: number, code: string, reason: string): void {
    if (this.faults.length < MAX_FAULTS) this.faults.push({ party, code, reason });
    this.log('dkg-fault', { party, code, reason });
  }

  private log(event: string, fields: Record<string, unknown> = {}): void {
    this.o.log?.(event, { self: this.index, ...fields });
  }
}

function now(): number {
  return performance.now();
}

function aborted(): DkgError {
  return new DkgError('DKG_ABORTED', 'the DKG was aborted', 'IGNORE');
}

/** Resolves with `p`, or TIMEOUT after `ms`; rejects with DKG_ABORTED when `signal` fires. */
function race<T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined): Promise<T | typeof TIMEOUT> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(TIMEOUT);
    }, ms);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
