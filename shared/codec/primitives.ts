/**
 * Primitive wire types every later part uses. Each constant is the codec, and the type of the same
 * name is its decoded value, so `Bytes32.decode(b)` returns a `Bytes32`.
 */
import { ByteListType, ByteVectorType, UintBigintType, UintNumberType } from '@chainsafe/ssz';
import { type CodecValue, defineCodec } from './codec.ts';

/** SHA-256 digests, ids, Merkle roots. */
export const Bytes32 = defineCodec('Bytes32', new ByteVectorType(32));
export type Bytes32 = CodecValue<typeof Bytes32>;

/** Coin amounts in base units (uint64, little-endian). */
export const Amount = defineCodec('Amount', new UintBigintType(8));
export type Amount = CodecValue<typeof Amount>;
export const MAX_AMOUNT = 2n ** 64n - 1n;

/** Heights, counts, indices that fit in 32 bits. */
export const Uint32 = defineCodec('Uint32', new UintNumberType(4));
export type Uint32 = CodecValue<typeof Uint32>;

/** Heights and times that need 64 bits (kept as bigint so no precision is lost). */
export const Uint64 = defineCodec('Uint64', new UintBigintType(8));
export type Uint64 = CodecValue<typeof Uint64>;

/** Account address payload: first 20 bytes of SHA-256(Ed25519 public key); bech32m `pouw1…` as text. */
export const AddressBytes = defineCodec('AddressBytes', new ByteVectorType(20));
export type AddressBytes = CodecValue<typeof AddressBytes>;

export const Ed25519PublicKey = defineCodec('Ed25519PublicKey', new ByteVectorType(32));
export type Ed25519PublicKey = CodecValue<typeof Ed25519PublicKey>;

export const Ed25519Signature = defineCodec('Ed25519Signature', new ByteVectorType(64));
export type Ed25519Signature = CodecValue<typeof Ed25519Signature>;

/** BLS12-381 public key, compressed G1 point. */
export const BlsPublicKey = defineCodec('BlsPublicKey', new ByteVectorType(48));
export type BlsPublicKey = CodecValue<typeof BlsPublicKey>;

/** BLS12-381 signature, compressed G2 point. */
export const BlsSignature = defineCodec('BlsSignature', new ByteVectorType(96));
export type BlsSignature = CodecValue<typeof BlsSignature>;

/** ECVRF-EDWARDS25519-SHA512-TAI proof: Gamma(32) ‖ c(16) ‖ s(32). */
export const VrfProof = defineCodec('VrfProof', new ByteVectorType(80));
export type VrfProof = CodecValue<typeof VrfProof>;

/** Structured transaction payload (the paper's OP_RETURN), at most 160 bytes. */
export const MAX_PAYLOAD_BYTES = 160;
export const Payload = defineCodec('Payload', new ByteListType(MAX_PAYLOAD_BYTES));
export type Payload = CodecValue<typeof Payload>;

/** Chain id as bytes on the wire (ASCII, validated by `assertChainId`). */
export const ChainIdBytes = defineCodec('ChainIdBytes', new ByteListType(32));
export type ChainIdBytes = CodecValue<typeof ChainIdBytes>;
