/**
 * Zero-nonce blocks (ZNB, DESIGN §4.4 step 7): a miner commits in IT_RES i to the block template it
 * will mine with at iteration i + k, so the nonces an iteration earns cannot be spent on a template
 * chosen after seeing them. A tip change voids every commitment: templates on the old tip are
 * useless, and new ones only become minable k iterations after they are committed.
 */
import { bytesToHex, equalBytes } from '../bytes.ts';
import { blockHash } from '../chain/ids.ts';
import type { BlockHeader } from '../chain/types.ts';

const ZERO32 = new Uint8Array(32);

/** Hash of a template with nonce and hashMsg zeroed: what IT_RES.znbHash commits to. */
export function znbHash(chainId: string, header: BlockHeader): Uint8Array {
  return blockHash(chainId, { ...header, nonce: ZERO32, hashMsg: ZERO32 });
}

/** Miner-side bookkeeping of commitments by iteration. */
export class ZnbCommitments {
  private readonly byIteration = new Map<number, { header: BlockHeader; hash: Uint8Array }>();
  /** znbHash by header object: a template stays the same object for many iterations (headers are values, never mutated). */
  private readonly hashes = new WeakMap<BlockHeader, Uint8Array>();
  private tipHex = '';

  constructor(
    private readonly chainId: string,
    private readonly lead: number,
  ) {}

  /** Records the template committed in the IT_RES of `iteration`; returns its znbHash. */
  commit(iteration: number, header: BlockHeader): Uint8Array {
    const tip = bytesToHex(header.prevHash);
    if (tip !== this.tipHex) {
      // New tip: everything committed on the old one is void.
      this.byIteration.clear();
      this.tipHex = tip;
    }
    let hash = this.hashes.get(header);
    if (hash === undefined) {
      hash = znbHash(this.chainId, header);
      this.hashes.set(header, hash);
    }
    this.byIteration.set(iteration, { header, hash });
    for (const i of this.byIteration.keys()) if (i < iteration - this.lead) this.byIteration.delete(i);
    return hash;
  }

  /** The template to mine with at `iteration`: the one committed k iterations earlier, if any. */
  templateFor(iteration: number, currentTip: Uint8Array): BlockHeader | undefined {
    const c = this.byIteration.get(iteration - this.lead);
    if (c === undefined || !equalBytes(c.header.prevHash, currentTip)) return undefined;
    return c.header;
  }
}
