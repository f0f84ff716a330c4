/**
 * SSZ element types that every container reuses, built once. Containers import these instead of
 * constructing their own copies of the same `ByteVectorType(32)` and friends.
 */
import { ByteVectorType, UintBigintType, UintNumberType } from '@chainsafe/ssz';

export const bytes20 = new ByteVectorType(20);
export const bytes32 = new ByteVectorType(32);
export const bytes64 = new ByteVectorType(64);
export const uint8 = new UintNumberType(1);
export const uint16 = new UintNumberType(2);
export const uint32 = new UintNumberType(4);
export const uint64 = new UintBigintType(8);
