/**
 * Proof of work: compact targets (Bitcoin's nBits), the target check, and retargeting toward the
 * configured block interval. Retargets happen every `retargetWindow` blocks from the actual time the
 * last window took, clamped to a factor of 4 either way (as Bitcoin), never easier than powLimit.
 */
import { bytesToBigIntBE } from '../bytes.ts';
import { LedgerError } from '../errors.ts';
import type { ChainParams } from './types.ts';

const MAX_TARGET = (1n << 256n) - 1n;

/** Decodes compact bits; rejects the sign bit, overflow, and non-canonical encodings. */
export function bitsToTarget(bits: number): bigint {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffffffff) {
    throw new LedgerError('BLOCK_BAD_BITS', `bits ${bits} is not a uint32`);
  }
  const exponent = bits >>> 24;
  const mantissa = bits & 0x007fffff;
  if ((bits & 0x00800000) !== 0) throw new LedgerError('BLOCK_BAD_BITS', 'negative compact target');
  if (mantissa === 0) throw new LedgerError('BLOCK_BAD_BITS', 'zero target');
  const target =
    exponent <= 3
      ? BigInt(mantissa) >> BigInt(8 * (3 - exponent))
      : BigInt(mantissa) << BigInt(8 * (exponent - 3));
  if (target > MAX_TARGET || target === 0n)
    throw new LedgerError('BLOCK_BAD_BITS', 'compact target out of range');
  if (targetToBits(target) !== bits)
    throw new LedgerError('BLOCK_BAD_BITS', `non-canonical compact target 0x${bits.toString(16)}`);
  return target;
}

/** Canonical compact encoding of a target (rounds down to 23 bits of mantissa). */
export function targetToBits(target: bigint): number {
  if (target <= 0n || target > MAX_TARGET) throw new LedgerError('BLOCK_BAD_BITS', 'target out of range');
  let size = 0;
  for (let t = target; t > 0n; t >>= 8n) size++;
  let mantissa =
    size <= 3 ? Number(target << BigInt(8 * (3 - size))) : Number(target >> BigInt(8 * (size - 3)));
  if (mantissa & 0x00800000) {
    mantissa >>>= 8;
    size++;
  }
  return ((size << 24) | mantissa) >>> 0;
}

/** True when the block hash, read as a 256-bit big-endian integer, is at most the target. */
export function meetsTarget(hash: Uint8Array, bits: number): boolean {
  return bytesToBigIntBE(hash) <= bitsToTarget(bits);
}

/** Expected number of hashes to meet a target: 2^256 / (target + 1). */
export function workForBits(bits: number): bigint {
  return (1n << 256n) / (bitsToTarget(bits) + 1n);
}

/**
 * Bits required for block `height`. `timeAt(h)` gives the time of block h (ms) for the heights this
 * needs: `height − 1` and `height − 1 − retargetWindow`.
 */
export function nextBits(
  params: ChainParams,
  height: bigint,
  prevBits: number,
  timeAt: (h: bigint) => bigint,
): number {
  if (height <= 1n) return params.initialBits;
  const window = BigInt(params.retargetWindow);
  if (window === 0n || (height - 1n) % window !== 0n) return prevBits;
  const last = height - 1n;
  const actual = timeAt(last) - timeAt(last - window);
  const expected = window * params.blockIntervalMs;
  const clamped = actual < expected / 4n ? expected / 4n : actual > expected * 4n ? expected * 4n : actual;
  const limit = bitsToTarget(params.powLimitBits);
  let target = (bitsToTarget(prevBits) * clamped) / expected;
  if (target > limit) target = limit;
  if (target === 0n) target = 1n;
  return targetToBits(target);
}

/** Block subsidy at `height`: halves every `halvingInterval` blocks; genesis mints none. */
export function blockSubsidy(params: ChainParams, height: bigint): bigint {
  if (height === 0n) return 0n;
  const halvings = params.halvingInterval === 0n ? 0n : (height - 1n) / params.halvingInterval;
  return halvings >= 64n ? 0n : params.initialReward >> halvings;
}
