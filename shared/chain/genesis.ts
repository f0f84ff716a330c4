/**
 * Genesis: the JSON file every node starts from (chain id, parameters, the committee's group key
 * and public shares, allocations), its validation with typed errors that name the offending field,
 * and the deterministic genesis block built from it. The file's schema for editors and operators is
 * `genesis.schema.json` beside this file; `parseGenesis` enforces the same rules and more (keys
 * must be valid curve points, addresses valid bech32m).
 */
import { bytesToHex, hexToBytes, utf8 } from '../bytes.ts';
import { assertChainId } from '../codec/domain.ts';
import { decodeAddress } from '../crypto/address.ts';
import { isValidPublicKey } from '../crypto/bls.ts';
import { isPouwError, LedgerError } from '../errors.ts';
import { merkleRoot, stateKey, stateValue, txId, wtxId } from './ids.ts';
import type { StateCommitment } from './ledger.ts';
import { BLOCK_VERSION } from './ledger.ts';
import { CoinbasePayload } from './payloads.ts';
import { bitsToTarget } from './pow.ts';
import {
  type Block,
  type ChainParams,
  type Committee,
  LockKind,
  MAX_COMMITTEE,
  MAX_TX_OUTPUTS,
  type Transaction,
  TxKind,
  type TxOut,
} from './types.ts';
import { TX_VERSION } from './validate-tx.ts';

export interface GenesisAllocation {
  address: string;
  value: bigint;
  /** Optional stake lock (a genesis supervisor stake, say): spendable by the owner from this height. */
  lockedUntil?: bigint;
}

export interface Genesis {
  chainId: string;
  /** ms since the Unix epoch. */
  time: bigint;
  params: ChainParams;
  committee: Committee;
  allocations: GenesisAllocation[];
}

/** Parameters for a local devnet: blocks every few seconds, easy targets. */
export const DEVNET_PARAMS: ChainParams = {
  blockIntervalMs: 3000n,
  retargetWindow: 20,
  powLimitBits: 0x207fffff,
  initialBits: 0x2000ffff,
  initialReward: 50_0000_0000n,
  halvingInterval: 210_000n,
  maxBlockBytes: 2 * 1024 * 1024,
  minFeePerByte: 1n,
  ticketPrice: 10_0000_0000n,
  maxFutureMs: 15_000n,
  verifierShareBps: 1000,
};

const U64_MAX = 2n ** 64n - 1n;

function fail(path: string, message: string): never {
  throw new LedgerError('GENESIS_INVALID', `${path}: ${message}`, 'REJECT', { path });
}

type Json = Record<string, unknown>;

function obj(v: unknown, path: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Json;
}

function only(o: Json, keys: string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${path}.${k}`, 'unknown field');
}

/** uint64 as a decimal string (JSON numbers lose precision past 2^53). */
function u64(v: unknown, path: string): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]*)$/.test(v)) fail(path, 'must be a decimal string');
  const x = BigInt(v);
  if (x > U64_MAX) fail(path, 'exceeds 2^64 − 1');
  return x;
}

function u32(v: unknown, path: string, max = 0xffffffff): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    fail(path, `must be an integer in [0, ${max}]`);
  return v;
}

function hexBytes(v: unknown, length: number, path: string): Uint8Array {
  if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]{${2 * length}}$`).test(v))
    fail(path, `must be ${length} bytes of lowercase hex`);
  return hexToBytes(v);
}

function compactBits(v: unknown, path: string): number {
  if (typeof v !== 'string' || !/^0x[0-9a-f]{8}$/.test(v))
    fail(path, 'must be compact bits like "0x207fffff"');
  const bits = Number.parseInt(v.slice(2), 16);
  try {
    bitsToTarget(bits);
  } catch (e) {
    fail(path, isPouwError(e) ? e.message : String(e));
  }
  return bits;
}

/** Validates parsed JSON and returns the typed genesis; throws LedgerError('GENESIS_INVALID'). */
export function parseGenesis(json: unknown): Genesis {
  const g = obj(json, 'genesis');
  only(g, ['chainId', 'time', 'params', 'committee', 'allocations'], 'genesis');
  if (typeof g['chainId'] !== 'string') fail('genesis.chainId', 'must be a string');
  const chainId = g['chainId'];
  try {
    assertChainId(chainId);
  } catch {
    fail('genesis.chainId', 'must be 1–32 characters of [a-z0-9-], not starting with "-"');
  }
  const time = u64(g['time'], 'genesis.time');

  const p = obj(g['params'], 'genesis.params');
  const paramKeys = Object.keys(DEVNET_PARAMS);
  only(p, paramKeys, 'genesis.params');
  for (const k of paramKeys) if (!(k in p)) fail(`genesis.params.${k}`, 'is required');
  const params: ChainParams = {
    blockIntervalMs: u64(p['blockIntervalMs'], 'genesis.params.blockIntervalMs'),
    retargetWindow: u32(p['retargetWindow'], 'genesis.params.retargetWindow', 100_000),
    powLimitBits: compactBits(p['powLimitBits'], 'genesis.params.powLimitBits'),
    initialBits: compactBits(p['initialBits'], 'genesis.params.initialBits'),
    initialReward: u64(p['initialReward'], 'genesis.params.initialReward'),
    halvingInterval: u64(p['halvingInterval'], 'genesis.params.halvingInterval'),
    maxBlockBytes: u32(p['maxBlockBytes'], 'genesis.params.maxBlockBytes'),
    minFeePerByte: u64(p['minFeePerByte'], 'genesis.params.minFeePerByte'),
    ticketPrice: u64(p['ticketPrice'], 'genesis.params.ticketPrice'),
    maxFutureMs: u64(p['maxFutureMs'], 'genesis.params.maxFutureMs'),
    verifierShareBps: u32(p['verifierShareBps'], 'genesis.params.verifierShareBps', 10_000),
  };
  if (params.blockIntervalMs === 0n) fail('genesis.params.blockIntervalMs', 'must be positive');
  if (params.retargetWindow === 0) fail('genesis.params.retargetWindow', 'must be positive');
  if (params.ticketPrice === 0n) fail('genesis.params.ticketPrice', 'must be positive');
  if (params.maxBlockBytes < 4096) fail('genesis.params.maxBlockBytes', 'must be at least 4096');
  if (bitsToTarget(params.initialBits) > bitsToTarget(params.powLimitBits)) {
    fail('genesis.params.initialBits', 'is easier than powLimitBits');
  }

  const c = obj(g['committee'], 'genesis.committee');
  only(c, ['groupPublicKey', 'threshold', 'members'], 'genesis.committee');
  const groupPublicKey = hexBytes(c['groupPublicKey'], 48, 'genesis.committee.groupPublicKey');
  if (!isValidPublicKey(groupPublicKey))
    fail('genesis.committee.groupPublicKey', 'is not a valid BLS12-381 G1 public key');
  const membersJson = c['members'];
  if (!Array.isArray(membersJson) || membersJson.length === 0 || membersJson.length > MAX_COMMITTEE) {
    fail('genesis.committee.members', `must be a list of 1..${MAX_COMMITTEE} members`);
  }
  const members = membersJson.map((m, i) => {
    const path = `genesis.committee.members[${i}]`;
    const mo = obj(m, path);
    only(mo, ['nodeKey', 'blsPublicShare'], path);
    const blsPublicShare = hexBytes(mo['blsPublicShare'], 48, `${path}.blsPublicShare`);
    if (!isValidPublicKey(blsPublicShare))
      fail(`${path}.blsPublicShare`, 'is not a valid BLS12-381 G1 public key');
    return { nodeKey: hexBytes(mo['nodeKey'], 32, `${path}.nodeKey`), blsPublicShare };
  });
  const threshold = u32(c['threshold'], 'genesis.committee.threshold', members.length);
  if (threshold === 0) fail('genesis.committee.threshold', 'must be at least 1');

  const allocJson = g['allocations'];
  if (!Array.isArray(allocJson) || allocJson.length === 0 || allocJson.length > MAX_TX_OUTPUTS) {
    fail('genesis.allocations', `must be a list of 1..${MAX_TX_OUTPUTS} allocations`);
  }
  let total = 0n;
  const allocations = allocJson.map((a, i): GenesisAllocation => {
    const path = `genesis.allocations[${i}]`;
    const ao = obj(a, path);
    only(ao, ['address', 'value', 'lockedUntil'], path);
    if (typeof ao['address'] !== 'string') fail(`${path}.address`, 'must be a string');
    try {
      decodeAddress(ao['address']);
    } catch (e) {
      fail(`${path}.address`, isPouwError(e) ? e.message : 'invalid address');
    }
    const value = u64(ao['value'], `${path}.value`);
    if (value === 0n) fail(`${path}.value`, 'must be positive');
    total += value;
    if (total > U64_MAX) fail('genesis.allocations', 'total exceeds 2^64 − 1');
    const out: GenesisAllocation = { address: ao['address'], value };
    if (ao['lockedUntil'] !== undefined) {
      out.lockedUntil = u64(ao['lockedUntil'], `${path}.lockedUntil`);
      if (out.lockedUntil === 0n) fail(`${path}.lockedUntil`, 'must be positive');
    }
    return out;
  });

  return { chainId, time, params, committee: { groupPublicKey, threshold, members }, allocations };
}

/** The JSON form of a genesis (inverse of parseGenesis). */
export function genesisToJson(g: Genesis): Record<string, unknown> {
  const p = g.params;
  const hexBits = (b: number) => `0x${b.toString(16).padStart(8, '0')}`;
  return {
    chainId: g.chainId,
    time: g.time.toString(),
    params: {
      blockIntervalMs: p.blockIntervalMs.toString(),
      retargetWindow: p.retargetWindow,
      powLimitBits: hexBits(p.powLimitBits),
      initialBits: hexBits(p.initialBits),
      initialReward: p.initialReward.toString(),
      halvingInterval: p.halvingInterval.toString(),
      maxBlockBytes: p.maxBlockBytes,
      minFeePerByte: p.minFeePerByte.toString(),
      ticketPrice: p.ticketPrice.toString(),
      maxFutureMs: p.maxFutureMs.toString(),
      verifierShareBps: p.verifierShareBps,
    },
    committee: {
      groupPublicKey: bytesToHex(g.committee.groupPublicKey),
      threshold: g.committee.threshold,
      members: g.committee.members.map((m) => ({
        nodeKey: bytesToHex(m.nodeKey),
        blsPublicShare: bytesToHex(m.blsPublicShare),
      })),
    },
    allocations: g.allocations.map((a) => ({
      address: a.address,
      value: a.value.toString(),
      ...(a.lockedUntil !== undefined ? { lockedUntil: a.lockedUntil.toString() } : {}),
    })),
  };
}

function allocationOutput(a: GenesisAllocation): TxOut {
  return {
    value: a.value,
    owner: decodeAddress(a.address),
    lockKind: a.lockedUntil === undefined ? LockKind.NONE : LockKind.STAKE,
    lockUntil: a.lockedUntil ?? 0n,
    lockTask: new Uint8Array(32),
  };
}

/**
 * The height-0 block: one coinbase-shaped transaction holding the allocations. It needs no proof of
 * work or certificate: every node derives the same block from the same file.
 */
export function genesisBlock(g: Genesis, emptyTree: StateCommitment): Block {
  const coinbase: Transaction = {
    body: {
      version: TX_VERSION,
      kind: TxKind.COINBASE,
      inputs: [],
      outputs: g.allocations.map(allocationOutput),
      payload: CoinbasePayload.encode({ height: 0n, extra: utf8(g.chainId) }),
    },
    witnesses: [],
    committeeSignature: new Uint8Array(0),
  };
  const id = txId(g.chainId, coinbase.body);
  const tree = emptyTree.fork();
  tree.update(
    coinbase.body.outputs.map(
      (out, index) => [stateKey(g.chainId, { txId: id, index }), stateValue(g.chainId, out)] as const,
    ),
  );
  return {
    header: {
      version: BLOCK_VERSION,
      height: 0n,
      prevHash: new Uint8Array(32),
      merkleRoot: merkleRoot(g.chainId, [wtxId(g.chainId, coinbase)]),
      stateRoot: tree.root(),
      time: g.time,
      bits: g.params.initialBits,
      nonce: new Uint8Array(32),
      taskId: new Uint8Array(32),
      hashMsg: new Uint8Array(32),
      hashMsgHist: new Uint8Array(32),
    },
    transactions: [coinbase],
  };
}
