/**
 * Bracha's reliable broadcast (Bracha 1987; the authenticated-channel version in Cachin, Guerraoui
 * and Rodrigues, "Introduction to Reliable and Secure Distributed Programming", §3.11) for the DKG's
 * broadcast messages (deal, ack, reveal), as a pure state machine: events in, frames and deliveries
 * out. With n ≥ 3f + 1 and f = ⌊(n − 1)/3⌋:
 *
 * - the author sends SEND(m) to all; a party ECHOes the first SEND it gets from the author, with m;
 * - on ⌈(n + f + 1)/2⌉ ECHOes of one digest, or f + 1 READYs for it, a party sends READY(digest),
 *   once per instance;
 * - on 2f + 1 READYs for a digest whose content it holds (from the SEND or any ECHO), it delivers.
 *
 * Consistency: no two honest parties deliver different messages for one (kind, author): an
 * equivocating dealer cannot hand different commitments to different honest parties. Totality: if
 * one honest party delivers, every honest party does (the f + 1 READY amplification), so a late
 * joiner catches up from the others' echoes. Validity: an honest author's message is delivered by
 * every honest party. Everything is idempotent: repeats of a frame change nothing.
 *
 * The caller checks the author's signature on each message before handing it here (so an ECHO can
 * only carry a message its author really signed) and that the sender of a SEND is its author.
 * Conflicting frames from one party for one instance are reported as faults: two SENDs with
 * different content are an author's provable equivocation (both are signed); a second, different
 * ECHO or READY is the relaying party's.
 */
import { bytesToHex, hexToBytes } from '../../shared/bytes.ts';
import type { DkgFrame, OpenedDkgMessage } from '../../shared/crypto/dkg-wire.ts';
import type { DkgErrorCode } from '../../shared/errors.ts';

export interface BroadcastFault {
  party: number;
  code: DkgErrorCode;
  reason: string;
}

export interface BroadcastOutput {
  /** Frames for every other member. */
  toAll: DkgFrame[];
  /** Messages delivered by this event, in order. */
  delivered: OpenedDkgMessage[];
  faults: BroadcastFault[];
}

export interface BroadcastQuorums {
  f: number;
  /** ECHOes of one digest that make a party READY. */
  echo: number;
  /** READYs of one digest that make a party READY too (amplification). */
  amplify: number;
  /** READYs of one digest that deliver it. */
  deliver: number;
}

export function broadcastQuorums(n: number): BroadcastQuorums {
  const f = Math.floor((n - 1) / 3);
  return { f, echo: Math.ceil((n + f + 1) / 2), amplify: f + 1, deliver: 2 * f + 1 };
}

interface Instance {
  kind: number;
  author: number;
  /** Digest (hex) of the first SEND from the author. */
  sent: string | null;
  echoes: Map<number, string>;
  readies: Map<number, string>;
  /** Contents by digest (hex): only from the SEND or an accepted ECHO, so at most n + 1. */
  contents: Map<string, OpenedDkgMessage>;
  readied: boolean;
  delivered: boolean;
}

export class ReliableBroadcast {
  readonly quorums: BroadcastQuorums;
  private readonly instances = new Map<string, Instance>();

  constructor(
    readonly n: number,
    readonly self: number,
    private readonly session: Uint8Array,
  ) {
    this.quorums = broadcastQuorums(n);
  }

  /** Broadcasts this party's own message (already signed): SEND to all, then echo it. */
  start(opened: OpenedDkgMessage): BroadcastOutput {
    const out = emptyOutput();
    out.toAll.push({ kind: 'send', signed: opened.signed });
    this.acceptSend(this.self, opened, out);
    return out;
  }

  /** A SEND from `from`, who must be the message's author (the caller checked). */
  onSend(from: number, opened: OpenedDkgMessage): BroadcastOutput {
    const out = emptyOutput();
    this.acceptSend(from, opened, out);
    return out;
  }

  onEcho(from: number, opened: OpenedDkgMessage): BroadcastOutput {
    const out = emptyOutput();
    const inst = this.instance(opened.signed.kind, opened.author);
    const digest = bytesToHex(opened.digest);
    const previous = inst.echoes.get(from);
    if (previous !== undefined) {
      if (previous !== digest) out.faults.push(conflict(from, 'ECHO', inst));
      return out;
    }
    inst.echoes.set(from, digest);
    if (!inst.contents.has(digest)) inst.contents.set(digest, opened);
    this.progress(inst, out);
    return out;
  }

  onReady(from: number, kind: number, author: number, digestBytes: Uint8Array): BroadcastOutput {
    const out = emptyOutput();
    const inst = this.instance(kind, author);
    const digest = bytesToHex(digestBytes);
    const previous = inst.readies.get(from);
    if (previous !== undefined) {
      if (previous !== digest) out.faults.push(conflict(from, 'READY', inst));
      return out;
    }
    inst.readies.set(from, digest);
    this.progress(inst, out);
    return out;
  }

  private acceptSend(from: number, opened: OpenedDkgMessage, out: BroadcastOutput): void {
    const inst = this.instance(opened.signed.kind, opened.author);
    const digest = bytesToHex(opened.digest);
    if (inst.sent !== null) {
      if (inst.sent !== digest) {
        out.faults.push({
          party: from,
          code: 'DKG_EQUIVOCATION',
          reason: `two different signed SENDs for ${describe(inst)}`,
        });
      }
      return;
    }
    inst.sent = digest;
    inst.contents.set(digest, opened);
    out.toAll.push({ kind: 'echo', signed: opened.signed });
    inst.echoes.set(this.self, digest);
    this.progress(inst, out);
  }

  private progress(inst: Instance, out: BroadcastOutput): void {
    if (!inst.readied) {
      const ready =
        mostVoted(inst.echoes, this.quorums.echo) ?? mostVoted(inst.readies, this.quorums.amplify);
      if (ready !== null) {
        inst.readied = true;
        inst.readies.set(this.self, ready);
        out.toAll.push({
          kind: 'ready',
          ready: { session: this.session, kind: inst.kind, author: inst.author, digest: hexToBytes(ready) },
        });
      }
    }
    if (!inst.delivered) {
      const digest = mostVoted(inst.readies, this.quorums.deliver);
      const content = digest === null ? undefined : inst.contents.get(digest);
      if (content !== undefined) {
        inst.delivered = true;
        out.delivered.push(content);
      }
    }
  }

  private instance(kind: number, author: number): Instance {
    const key = `${kind}:${author}`;
    let inst = this.instances.get(key);
    if (inst === undefined) {
      inst = {
        kind,
        author,
        sent: null,
        echoes: new Map(),
        readies: new Map(),
        contents: new Map(),
        readied: false,
        delivered: false,
      };
      this.instances.set(key, inst);
    }
    return inst;
  }
}

function emptyOutput(): BroadcastOutput {
  return { toAll: [], delivered: [], faults: [] };
}

/**
 * The digest with at least `quorum` votes. For the echo and deliver quorums at most one digest can
 * get there; for f + 1 READYs too, because honest parties READY one digest and f cannot reach f + 1.
 */
function mostVoted(votes: ReadonlyMap<number, string>, quorum: number): string | null {
  const counts = new Map<string, number>();
  for (const d of votes.values()) {
    const c = (counts.get(d) ?? 0) + 1;
    if (c >= quorum) return d;
    counts.set(d, c);
  }
  return null;
}

function describe(inst: Instance): string {
  return `kind ${inst.kind} of member ${inst.author}`;
}

function conflict(party: number, what: string, inst: Instance): BroadcastFault {
  return { party, code: 'DKG_EQUIVOCATION', reason: `second, different ${what} for ${describe(inst)}` };
}
