/**
 * A small finalized chain and the wallet data a light client would be served for it, shared by the
 * light-client tests in Node (memory store) and Chromium (IndexedDB store).
 */
import * as bls from '../crypto/bls.ts';
import { txId } from './ids.ts';
import type { LightClientConfig, ProvenOutput } from './light-client.ts';
import { Mempool } from './mempool.ts';
import {
  createTestChain,
  genesisOutpoint,
  makeTransfer,
  nextFinalizedBlock,
  plainOutput,
  type TestChain,
} from './testkit.ts';
import type { BlockHeader, FinalityCertificate, OutPoint } from './types.ts';

export interface LightClientScenario {
  chain: TestChain;
  config: LightClientConfig;
  headers: { header: BlockHeader; certificate: FinalityCertificate }[];
  /** Account 1's outputs after block 2, proven at height 2. */
  walletAt2: ProvenOutput[];
  /** Account 1's genesis output, spent in block 1. */
  spentOutpoint: OutPoint;
  received: bigint;
}

export async function lightClientScenario(): Promise<LightClientScenario> {
  const chain = await createTestChain();
  const [a, b] = chain.accounts;
  const mempool = new Mempool(chain.ledger, { maxBytes: 1 << 20 });
  const headers: LightClientScenario['headers'] = [];
  const finalize = async () => {
    const { block, certificate } = await nextFinalizedBlock(chain, mempool);
    const diff = await chain.ledger.applyFinalized(block, certificate);
    mempool.onBlock(diff, chain.ledger);
    headers.push({ header: block.header, certificate });
  };
  // Block 1: b sends 600,000,000 to itself split in two (spends its genesis output).
  const t1 = await makeTransfer(
    chain,
    b!,
    [genesisOutpoint(chain, 1)],
    [plainOutput(b!.address, 400_000_000n), plainOutput(b!.address, 599_990_000n)],
  );
  await mempool.add(t1);
  await finalize();
  // Block 2: a pays b 250,000,000.
  const t2 = await makeTransfer(
    chain,
    a!,
    [genesisOutpoint(chain, 0)],
    [plainOutput(b!.address, 250_000_000n), plainOutput(a!.address, 749_990_000n)],
  );
  await mempool.add(t2);
  await finalize();
  const ops: OutPoint[] = [
    { txId: txId(chain.genesis.chainId, t1.body), index: 0 },
    { txId: txId(chain.genesis.chainId, t1.body), index: 1 },
    { txId: txId(chain.genesis.chainId, t2.body), index: 0 },
  ];
  const walletAt2 = ops.map((outpoint) => {
    const p = chain.ledger.proveUtxo(outpoint);
    return { outpoint, out: p.out!, proof: p.proof };
  });
  return {
    chain,
    config: {
      chainId: chain.genesis.chainId,
      groupPublicKey: chain.genesis.committee.groupPublicKey,
      blsVerify: bls.verify,
    },
    headers,
    walletAt2,
    spentOutpoint: genesisOutpoint(chain, 1),
    received: 400_000_000n + 599_990_000n + 250_000_000n,
  };
}
