/**
 * A block candidate and the proof bundle a verifier needs to replay the iteration that found it
 * (DESIGN §4.4 step 7, §4.5). Miners emit it; supervisors hand it, with their message history, to
 * the verifier (shared/pouw/verify.ts).
 */
import type { Block } from '../chain/types.ts';
import type { ItRes } from './itres.ts';

export interface BlockCandidate {
  /** Template the miner committed to k iterations earlier, with hashMsg = workId(lucky) and a winning nonce. */
  block: Block;
  /** The IT_RES whose iteration earned the nonce. */
  lucky: ItRes;
  /** The same miner's IT_RES at iteration lucky − k, whose znbHash commits to the template. */
  znbSource: ItRes;
  /** The miner's IT_RES of the lucky iteration's residual segment, from its start to `lucky` inclusive. */
  segment: ItRes[];
}

/** What a verifier reads from the supervisors' message history. */
export interface MessageHistory {
  /** Any recorded IT_RES by id (hex), e.g. the peer messages a miner listed. */
  get(idHex: string): ItRes | undefined;
  /**
   * The miner's IT_RES at `iteration`, if recorded. A history records one IT_RES per (miner,
   * iteration), the first it accepted, and refuses any other (itres.ts `sameWork` tells a re-signed
   * copy of the same work from different work).
   */
  byMiner(minerHex: string, iteration: number): ItRes | undefined;
  /**
   * Work ids (hex, itres.ts `workId`) already named by an earlier block's hashMsg: a piece of work
   * earns one block, however its IT_RES is re-signed.
   */
  alreadyRewarded(workIdHex: string): boolean;
}
