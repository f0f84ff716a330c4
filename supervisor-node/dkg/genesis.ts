/**
 * The devnet genesis as a pure function of a template (chain id, time, parameters, allocations:
 * everything but the committee) and the DKG's public outcome (node keys, threshold, group key,
 * public shares). Every supervisor that finished the same DKG derives byte-identical genesis files
 * with no coordinator.
 */
import { bytesToHex } from '../../shared/bytes.ts';
import type { Genesis } from '../../shared/chain/genesis.ts';
import { genesisToJson, parseGenesis } from '../../shared/chain/genesis.ts';
import { encodePublicKey, G1 } from '../../shared/crypto/bls.ts';
import { LedgerError } from '../../shared/errors.ts';
import type { NetworkDkgResult } from './run.ts';

export type GenesisTemplate = Omit<Genesis, 'committee'>;

/** The part of a DKG result that genesis records (public data only). */
export type CommitteeOutcome = Pick<NetworkDkgResult, 'committee' | 't' | 'groupPublicKey' | 'publicShares'>;

/** Genesis for `template` and a DKG outcome; validated by the same rules as a genesis file. */
export function genesisFromDkg(template: GenesisTemplate, outcome: CommitteeOutcome): Genesis {
  if (outcome.committee.length !== outcome.publicShares.length) {
    throw new LedgerError('GENESIS_INVALID', 'genesis.committee: one public share per member', 'REJECT');
  }
  const genesis: Genesis = {
    chainId: template.chainId,
    time: template.time,
    params: { ...template.params },
    committee: {
      groupPublicKey: outcome.groupPublicKey.slice(),
      threshold: outcome.t,
      members: outcome.committee.map((nodeKey, k) => ({
        nodeKey: nodeKey.slice(),
        blsPublicShare: outcome.publicShares[k]!.slice(),
      })),
    },
    allocations: template.allocations.map((a) => ({ ...a })),
  };
  return parseGenesis(genesisToJson(genesis));
}

/**
 * A template from JSON (a genesis file without `committee`), checked up front so a bad template
 * fails before the DKG runs: it is parsed as a genesis with a stand-in one-member committee (the G1
 * generator is a valid key), and that committee is dropped again.
 */
export function parseGenesisTemplate(json: unknown): GenesisTemplate {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new LedgerError('GENESIS_INVALID', 'genesis template: must be an object', 'REJECT');
  }
  if ('committee' in json) {
    throw new LedgerError('GENESIS_INVALID', 'genesis template: the committee comes from the DKG', 'REJECT');
  }
  const g = encodePublicKey(G1.BASE);
  const { committee: _, ...template } = parseGenesis({
    ...json,
    committee: {
      groupPublicKey: bytesToHex(g),
      threshold: 1,
      members: [{ nodeKey: '00'.repeat(32), blsPublicShare: bytesToHex(g) }],
    },
  });
  return template;
}

/** The JSON form of a template (inverse of parseGenesisTemplate). */
export function genesisTemplateToJson(template: GenesisTemplate): Record<string, unknown> {
  const g = encodePublicKey(G1.BASE);
  const { committee: _, ...json } = genesisToJson({
    ...template,
    committee: {
      groupPublicKey: g,
      threshold: 1,
      members: [{ nodeKey: new Uint8Array(32), blsPublicShare: g }],
    },
  });
  return json;
}
