/**
 * Transaction rules. `validateTxBasic` needs no state (sizes, kinds, payloads, locks on new outputs,
 * signatures over the id); `validateTxInputs` checks a transaction against a UTXO view at a height.
 * Every rejection is a LedgerError whose code names the rule.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, equalBytes } from '../bytes.ts';
import { DecodeError, LedgerError } from '../errors.ts';
import { outpointKey, txId } from './ids.ts';
import {
  type BuyTicketsPayload,
  type CoinbasePayload,
  PAYLOAD_CODECS,
  type PayForTaskPayload,
  type SettleTaskPayload,
  type SlashPayload,
} from './payloads.ts';
import {
  type ChainParams,
  LockKind,
  Role,
  type Transaction,
  Transaction as TxCodec,
  TxKind,
  type TxOut,
} from './types.ts';

export const TX_VERSION = 1;
/** Largest encoded transaction accepted anywhere (a settlement paying 256 miners fits). */
export const MAX_TX_BYTES = 64 * 1024;
const MAX_VALUE = 2n ** 64n - 1n;
const ZERO32 = new Uint8Array(32);

/** Signature checks the ledger needs, injected so each platform uses its fastest implementation. */
export interface SignatureVerifiers {
  /** Strict RFC 8032 Ed25519 (shared/crypto/ed25519.ts). */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** BLS (PoP ciphersuite) against the committee's group key. */
  blsVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

export interface TxContext {
  chainId: string;
  params: ChainParams;
  verifiers: SignatureVerifiers;
  /** Hex wtxids whose signatures were already verified (mempool admission); skips re-verification. */
  verifiedSignatures?: Set<string>;
}

export type DecodedPayload =
  | { kind: typeof TxKind.TRANSFER; value: Uint8Array }
  | { kind: typeof TxKind.COINBASE; value: CoinbasePayload }
  | { kind: typeof TxKind.PAY_FOR_TASK; value: PayForTaskPayload }
  | { kind: typeof TxKind.BUY_TICKETS; value: BuyTicketsPayload }
  | { kind: typeof TxKind.SETTLE_TASK; value: SettleTaskPayload }
  | { kind: typeof TxKind.SLASH; value: SlashPayload };

export interface BasicTx {
  tx: Transaction;
  id: Uint8Array;
  idHex: string;
  kind: TxKind;
  payload: DecodedPayload;
  outputTotal: bigint;
  encodedSize: number;
}

/** Address bytes of an Ed25519 public key: first 20 bytes of its SHA-256. */
export function addressBytesOf(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey).subarray(0, 20);
}

function reject(
  code: ConstructorParameters<typeof LedgerError>[0],
  message: string,
  detail: Record<string, unknown> = {},
): never {
  throw new LedgerError(code, message, 'REJECT', detail);
}

function decodePayload(kind: TxKind, bytes: Uint8Array): DecodedPayload {
  const codec = PAYLOAD_CODECS[kind];
  try {
    return { kind, value: codec.decode(bytes) } as DecodedPayload;
  } catch (e) {
    if (e instanceof DecodeError)
      reject('TX_BAD_PAYLOAD', `payload does not decode as ${codec.typeName}: ${e.message}`);
    throw e;
  }
}

function checkOutputLock(out: TxOut, i: number): void {
  const zeroTask = equalBytes(out.lockTask, ZERO32);
  const ok =
    (out.lockKind === LockKind.NONE && out.lockUntil === 0n && zeroTask) ||
    (out.lockKind === LockKind.STAKE && out.lockUntil > 0n) ||
    (out.lockKind === LockKind.ESCROW && out.lockUntil === 0n && !zeroTask);
  if (!ok)
    reject('TX_BAD_OUTPUT_LOCK', `output ${i} has a malformed lock`, { index: i, lockKind: out.lockKind });
}

/** Stateless checks. Signatures of user transactions are verified here (they need no state). */
export async function validateTxBasic(tx: Transaction, ctx: TxContext): Promise<BasicTx> {
  const { body } = tx;
  const encodedSize = TxCodec.encode(tx).length;
  if (encodedSize > MAX_TX_BYTES)
    reject('TX_TOO_LARGE', `transaction is ${encodedSize} bytes, limit ${MAX_TX_BYTES}`);
  if (body.version !== TX_VERSION)
    reject('TX_BAD_VERSION', `version ${body.version}, expected ${TX_VERSION}`);
  if (!(body.kind in PAYLOAD_CODECS)) reject('TX_UNKNOWN_KIND', `unknown transaction kind ${body.kind}`);
  const kind = body.kind as TxKind;
  const payload = decodePayload(kind, body.payload);
  const committeeKind = kind === TxKind.SETTLE_TASK || kind === TxKind.SLASH;

  if (kind === TxKind.COINBASE) {
    if (body.inputs.length > 0) reject('TX_UNEXPECTED_INPUTS', 'a coinbase has no inputs');
  } else if (body.inputs.length === 0) {
    reject('TX_NO_INPUTS', 'transaction has no inputs');
  }
  if (body.outputs.length === 0) reject('TX_NO_OUTPUTS', 'transaction has no outputs');

  const seen = new Set<string>();
  for (const input of body.inputs) {
    const k = outpointKey(input);
    if (seen.has(k))
      reject('TX_DUPLICATE_INPUT', 'an outpoint is spent twice in one transaction', { outpoint: k });
    seen.add(k);
  }

  let outputTotal = 0n;
  body.outputs.forEach((out, i) => {
    if (out.value === 0n) reject('TX_ZERO_OUTPUT', `output ${i} has zero value`, { index: i });
    outputTotal += out.value;
    if (outputTotal > MAX_VALUE) reject('TX_VALUE_OVERFLOW', 'outputs sum past 2^64 − 1');
    checkOutputLock(out, i);
  });

  checkKindOutputs(payload, tx, ctx.params);

  if (committeeKind) {
    if (tx.witnesses.length > 0) reject('TX_UNEXPECTED_WITNESS', 'committee transactions carry no witnesses');
    if (tx.committeeSignature.length !== 96) {
      reject('TX_MISSING_COMMITTEE_SIGNATURE', 'SETTLE_TASK and SLASH need the committee signature');
    }
  } else {
    if (tx.committeeSignature.length > 0)
      reject('TX_UNEXPECTED_COMMITTEE_SIGNATURE', 'only committee kinds carry one');
    if (kind === TxKind.COINBASE && tx.witnesses.length > 0)
      reject('TX_UNEXPECTED_WITNESS', 'a coinbase has no witnesses');
    if (kind !== TxKind.COINBASE && tx.witnesses.length === 0) reject('TX_BAD_WITNESS_COUNT', 'no witnesses');
  }

  const id = txId(ctx.chainId, body);
  const idHex = bytesToHex(id);
  if (
    !committeeKind &&
    tx.witnesses.length > 0 &&
    !ctx.verifiedSignatures?.has(idHex + bytesToHex(witnessDigest(tx)))
  ) {
    const results = await Promise.all(
      tx.witnesses.map((w) => ctx.verifiers.ed25519Verify(w.publicKey, id, w.signature)),
    );
    const bad = results.indexOf(false);
    if (bad >= 0)
      reject('TX_BAD_SIGNATURE', `witness ${bad} does not sign the transaction id`, { witness: bad });
  }
  return { tx, id, idHex, kind, payload, outputTotal, encodedSize };
}

/** Digest of the witnesses, so a verified-signature cache entry covers exactly these signatures. */
export function witnessDigest(tx: Transaction): Uint8Array {
  const h = sha256.create();
  for (const w of tx.witnesses) h.update(w.publicKey).update(w.signature);
  return h.update(tx.committeeSignature).digest();
}

export function verifiedKey(basic: { idHex: string; tx: Transaction }): string {
  return basic.idHex + bytesToHex(witnessDigest(basic.tx));
}

function checkKindOutputs(payload: DecodedPayload, tx: Transaction, params: ChainParams): void {
  const outs = tx.body.outputs;
  const allNone = () => outs.every((o) => o.lockKind === LockKind.NONE);
  switch (payload.kind) {
    case TxKind.TRANSFER:
    case TxKind.COINBASE:
    case TxKind.SETTLE_TASK:
      if (!allNone()) reject('TX_BAD_OUTPUT_LOCK', 'this kind creates only unlocked outputs');
      return;
    case TxKind.PAY_FOR_TASK: {
      const p = payload.value;
      const escrows = outs.filter((o) => o.lockKind === LockKind.ESCROW);
      if (escrows.length !== 1 || !equalBytes(escrows[0]!.lockTask, p.taskId)) {
        reject('TX_BAD_ESCROW', 'PAY_FOR_TASK creates exactly one escrow output locked to its task');
      }
      if (outs.some((o) => o.lockKind === LockKind.STAKE))
        reject('TX_BAD_OUTPUT_LOCK', 'no stake outputs here');
      if (p.minerShareBps + p.supervisorShareBps + p.evaluatorShareBps > 10_000) {
        reject('TX_BAD_PAYLOAD', 'fee shares exceed 100%');
      }
      if (equalBytes(p.taskId, ZERO32)) reject('TX_BAD_PAYLOAD', 'task id is zero');
      return;
    }
    case TxKind.BUY_TICKETS: {
      const p = payload.value;
      if (!Object.values(Role).includes(p.role as Role)) reject('TX_BAD_PAYLOAD', `unknown role ${p.role}`);
      if (p.ticketCount === 0) reject('TX_BAD_PAYLOAD', 'ticket count is zero');
      const stakes = outs.filter((o) => o.lockKind === LockKind.STAKE);
      const stake = stakes[0];
      if (stakes.length !== 1 || stake === undefined)
        reject('TX_BAD_STAKE', 'BUY_TICKETS creates exactly one stake output');
      if (stake.lockUntil !== p.expiryHeight)
        reject('TX_BAD_STAKE', 'stake lock must end at the ticket expiry');
      if (!equalBytes(stake.lockTask, ZERO32)) reject('TX_BAD_STAKE', 'a new stake is not bound to a task');
      if (stake.value !== BigInt(p.ticketCount) * params.ticketPrice) {
        reject('TX_BAD_STAKE', `stake must be ${p.ticketCount} × ticket price`, { value: stake.value });
      }
      if (outs.some((o) => o.lockKind === LockKind.ESCROW))
        reject('TX_BAD_OUTPUT_LOCK', 'no escrow outputs here');
      return;
    }
    case TxKind.SLASH: {
      const p = payload.value;
      if (!outs.every((o) => o.lockKind === LockKind.ESCROW && equalBytes(o.lockTask, p.taskId))) {
        reject('TX_BAD_ESCROW', "SLASH pays only into the task's escrow (its fee pool)");
      }
      return;
    }
  }
}

/** Read-only view of unspent outputs by outpoint key. */
export interface UtxoView {
  get(key: string): TxOut | undefined;
}

export interface CheckedTx extends BasicTx {
  /** Spent outputs, in input order. */
  spent: TxOut[];
  inputTotal: bigint;
  fee: bigint;
}

/**
 * Checks a non-coinbase transaction against unspent outputs at `height` (the height of the block
 * that would include it). `groupPublicKey` authorizes SETTLE_TASK and SLASH.
 */
export function validateTxInputs(
  basic: BasicTx,
  utxos: UtxoView,
  height: bigint,
  groupPublicKey: Uint8Array,
  ctx: TxContext,
): CheckedTx {
  const { tx, payload } = basic;
  if (basic.kind === TxKind.COINBASE)
    reject('TX_COINBASE_NOT_ALLOWED', 'a coinbase is only valid as the first transaction of a block');
  const spent: TxOut[] = [];
  let inputTotal = 0n;
  for (const input of tx.body.inputs) {
    const key = outpointKey(input);
    const out = utxos.get(key);
    if (out === undefined) {
      throw new LedgerError('TX_MISSING_INPUT', 'input is unknown or already spent', 'IGNORE', {
        outpoint: key,
      });
    }
    spent.push(out);
    inputTotal += out.value;
  }

  if (payload.kind === TxKind.SETTLE_TASK || payload.kind === TxKind.SLASH) {
    if (payload.kind === TxKind.SETTLE_TASK) {
      if (
        !spent.every((o) => o.lockKind === LockKind.ESCROW && equalBytes(o.lockTask, payload.value.taskId))
      ) {
        reject('TX_BAD_ESCROW', "SETTLE_TASK spends only its task's escrow");
      }
    } else {
      const p = payload.value;
      const ok = spent.every(
        (o) => o.lockKind === LockKind.STAKE && equalBytes(o.owner, p.offender) && o.lockUntil > height,
      );
      if (!ok) reject('TX_BAD_STAKE', "SLASH spends only the offender's stakes that are still locked");
    }
    if (!ctx.verifiedSignatures?.has(verifiedKey(basic))) {
      if (!ctx.verifiers.blsVerify(groupPublicKey, basic.id, tx.committeeSignature)) {
        reject('TX_BAD_COMMITTEE_SIGNATURE', 'committee signature does not verify against the group key');
      }
    }
  } else {
    // Owners must sign: one witness per distinct owner, in order of first appearance.
    const owners: Uint8Array[] = [];
    const ownerSeen = new Set<string>();
    spent.forEach((o, i) => {
      if (o.lockKind === LockKind.ESCROW)
        reject('TX_LOCKED_INPUT', `input ${i} is a task escrow`, { input: i });
      if (o.lockKind === LockKind.STAKE && o.lockUntil > height) {
        reject('TX_LOCKED_INPUT', `input ${i} is a stake locked until height ${o.lockUntil}`, { input: i });
      }
      const h = bytesToHex(o.owner);
      if (!ownerSeen.has(h)) {
        ownerSeen.add(h);
        owners.push(o.owner);
      }
    });
    if (owners.length !== tx.witnesses.length) {
      reject('TX_BAD_WITNESS_COUNT', `${owners.length} distinct owners, ${tx.witnesses.length} witnesses`);
    }
    owners.forEach((owner, i) => {
      if (!equalBytes(addressBytesOf(tx.witnesses[i]!.publicKey), owner)) {
        reject('TX_WITNESS_MISMATCH', `witness ${i} is not the key of the input owner`, { witness: i });
      }
    });
    if (payload.kind === TxKind.BUY_TICKETS && payload.value.expiryHeight <= height) {
      reject('TX_EXPIRED', 'ticket expiry is not after the inclusion height');
    }
    if (payload.kind === TxKind.PAY_FOR_TASK && payload.value.deadlineHeight <= height) {
      reject('TX_EXPIRED', 'task deadline is not after the inclusion height');
    }
  }

  if (basic.outputTotal > inputTotal) {
    reject('TX_OVERSPEND', `outputs ${basic.outputTotal} exceed inputs ${inputTotal}`);
  }
  return { ...basic, spent, inputTotal, fee: inputTotal - basic.outputTotal };
}
