/**
 * The wallet balance a volunteer shows, from finality-verified data only: finalized headers are
 * kept when their committee certificate verifies against the chain anchor (light client,
 * shared/chain/light-client.ts), and outputs count when their state proof checks against such a
 * header. Until that has happened the balance is "unverified", whatever the network says.
 */
import { bytesToHex } from '../shared/bytes.ts';
import { type Balance, LightClient, type LightClientStore } from '../shared/chain/light-client.ts';
import * as bls from '../shared/crypto/bls.ts';
import { isPouwError } from '../shared/errors.ts';
import type { ChainAnchor, VolunteerNetwork } from './network.ts';

export type BalanceView =
  | { status: 'unverified'; reason: string }
  | ({ status: 'verified'; height: bigint } & Omit<Balance, 'height'>);

/** Headers fetched per request while catching up. */
const HEADER_PAGE = 64;

/**
 * BLS verification with a bounded memo: the light client re-verifies the certificate of a header
 * every time an output proven against it is read, and a pairing costs ~25 ms in pure JS; the same
 * (key, message, signature) always gives the same answer.
 */
export function memoizedBlsVerify(
  verify: (pk: Uint8Array, msg: Uint8Array, sig: Uint8Array) => boolean = bls.verify,
  capacity = 256,
): (pk: Uint8Array, msg: Uint8Array, sig: Uint8Array) => boolean {
  const memo = new Map<string, boolean>();
  return (pk, msg, sig) => {
    const key = `${bytesToHex(pk)}/${bytesToHex(msg)}/${bytesToHex(sig)}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    const ok = verify(pk, msg, sig);
    memo.set(key, ok);
    if (memo.size > capacity) memo.delete(memo.keys().next().value!);
    return ok;
  };
}

export class WalletBalance {
  private readonly client: LightClient;
  private syncing: Promise<BalanceView> | undefined;

  constructor(
    private readonly network: VolunteerNetwork,
    anchor: ChainAnchor,
    private readonly store: LightClientStore,
    /** 20-byte address payload. */
    private readonly owner: Uint8Array,
  ) {
    this.client = new LightClient(
      { chainId: anchor.chainId, groupPublicKey: anchor.groupPublicKey, blsVerify: memoizedBlsVerify() },
      store,
    );
  }

  /**
   * Catches up on finalized headers (each certificate checked), asks for the wallet's outputs with
   * proofs, checks them, and returns the balance. Verification failures come back as "unverified"
   * with the failed rule; calls while a sync runs share it.
   */
  sync(): Promise<BalanceView> {
    this.syncing ??= this.run().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async run(): Promise<BalanceView> {
    try {
      let from = ((await this.store.latestHeight()) ?? 0n) + 1n;
      for (;;) {
        const page = await this.network.fetchFinalized(from, HEADER_PAGE);
        for (const f of page) await this.client.addFinalizedHeader(f.header, f.certificate);
        if (page.length < HEADER_PAGE) break;
        from = page[page.length - 1]!.header.height + 1n;
      }
      const known = (await this.store.listOutputs()).map((o) => o.outpoint);
      const proofs = await this.network.fetchWalletProofs(this.owner, known);
      if ((await this.store.getHeader(proofs.height)) === undefined) {
        const [f] = await this.network.fetchFinalized(proofs.height, 1);
        if (f === undefined || f.header.height !== proofs.height)
          return {
            status: 'unverified',
            reason:
              proofs.height === 0n
                ? 'no block finalized yet'
                : `no finalized header at height ${proofs.height}`,
          };
        await this.client.addFinalizedHeader(f.header, f.certificate);
      }
      await this.client.applyWalletUpdate(proofs.height, proofs.present, proofs.spent);
      const b = await this.client.balance(this.owner);
      return {
        status: 'verified',
        spendable: b.spendable,
        staked: b.staked,
        escrowed: b.escrowed,
        height: proofs.height,
      };
    } catch (e) {
      if (!isPouwError(e)) throw e;
      return { status: 'unverified', reason: e.message };
    }
  }
}
