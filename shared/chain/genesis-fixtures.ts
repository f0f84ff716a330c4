/** Genesis documents for tests: a valid sample and invalid mutations with the field each breaks. */
import { genesisToJson } from './genesis.ts';
import { createTestChain } from './testkit.ts';

export async function sampleGenesisJson(): Promise<Record<string, unknown>> {
  const chain = await createTestChain();
  return genesisToJson(chain.genesis);
}

// biome-ignore lint/suspicious/noExplicitAny: mutations poke at arbitrary JSON.
type Mutation = [string, (g: any) => void, string];

/** Invalid genesis documents and the field each must be rejected for. */
export const INVALID_GENESIS: Mutation[] = [
  ['bad chain id', (g) => (g.chainId = 'Bad Chain'), 'genesis.chainId'],
  ['time as a number', (g) => (g.time = 5), 'genesis.time'],
  ['unknown top-level field', (g) => (g.extra = 1), 'genesis.extra'],
  ['missing params field', (g) => delete g.params.ticketPrice, 'genesis.params.ticketPrice'],
  ['zero block interval', (g) => (g.params.blockIntervalMs = '0'), 'genesis.params.blockIntervalMs'],
  ['non-canonical bits', (g) => (g.params.initialBits = '0x1d0000ff'), 'genesis.params.initialBits'],
  [
    'uint64 overflow',
    (g) => (g.params.initialReward = '18446744073709551616'),
    'genesis.params.initialReward',
  ],
  ['group key not hex', (g) => (g.committee.groupPublicKey = 'zz'), 'genesis.committee.groupPublicKey'],
  ['threshold above members', (g) => (g.committee.threshold = 9), 'genesis.committee.threshold'],
  ['no members', (g) => (g.committee.members = []), 'genesis.committee.members'],
  ['bad address', (g) => (g.allocations[0].address = 'pouw1qqqq'), 'genesis.allocations[0].address'],
  ['zero allocation', (g) => (g.allocations[1].value = '0'), 'genesis.allocations[1].value'],
  ['no allocations', (g) => (g.allocations = []), 'genesis.allocations'],
];
