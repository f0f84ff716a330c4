/**
 * One codec per type: an SSZ type (`@chainsafe/ssz`) wrapped so that decoding is the only way bytes
 * become values. Decoding checks the size bounds before the SSZ library allocates anything, maps
 * every library failure to a typed DecodeError, and rejects non-canonical input by re-encoding the
 * decoded value and comparing bytes (SSZ has one encoding per value; anything else is malleable).
 */
// Before any SSZ type is constructed: ByteList/BitList need a global Buffer in browsers.
import './buffer-shim.ts';
import type { Type, ValueOf } from '@chainsafe/ssz';
import { equalBytes, isBytes } from '../bytes.ts';
import { DecodeError } from '../errors.ts';

export interface Codec<T, S extends Type<T> = Type<T>> {
  /** Name of the type, used in error messages and on the wire docs. */
  readonly typeName: string;
  /** The SSZ type itself, for nesting in other types. */
  readonly ssz: S;
  readonly minSize: number;
  readonly maxSize: number;
  encode(value: T): Uint8Array;
  /** Decodes canonical bytes; throws DecodeError (verdict REJECT) for anything else. */
  decode(bytes: Uint8Array): T;
  /** SSZ hash tree root (Merkleized commitment to the value). */
  hashTreeRoot(value: T): Uint8Array;
  equals(a: T, b: T): boolean;
  defaultValue(): T;
}

// biome-ignore lint/suspicious/noExplicitAny: SSZ types are generic over their value; any S is accepted.
export function defineCodec<S extends Type<any>>(typeName: string, ssz: S): Codec<ValueOf<S>, S> {
  type T = ValueOf<S>;
  const type = ssz as Type<T>;
  const { minSize, maxSize } = type;
  return {
    typeName,
    ssz,
    minSize,
    maxSize,
    encode(value: T): Uint8Array {
      return type.serialize(value);
    },
    decode(bytes: Uint8Array): T {
      if (!isBytes(bytes))
        throw new DecodeError('DECODE_WRONG_TYPE', `${typeName}: input is not a Uint8Array`);
      if (bytes.length > maxSize) {
        throw new DecodeError(
          'DECODE_OVERSIZED',
          `${typeName}: ${bytes.length} bytes exceeds the maximum ${maxSize}`,
          {
            typeName,
            length: bytes.length,
            maxSize,
          },
        );
      }
      if (bytes.length < minSize) {
        throw new DecodeError(
          'DECODE_UNDERSIZED',
          `${typeName}: ${bytes.length} bytes is below the minimum ${minSize}`,
          {
            typeName,
            length: bytes.length,
            minSize,
          },
        );
      }
      let value: T;
      try {
        value = type.deserialize(bytes);
      } catch (e) {
        throw new DecodeError(
          'DECODE_MALFORMED',
          `${typeName}: ${e instanceof Error ? e.message : String(e)}`,
          {
            typeName,
          },
        );
      }
      let reencoded: Uint8Array;
      try {
        reencoded = type.serialize(value);
      } catch (e) {
        throw new DecodeError(
          'DECODE_MALFORMED',
          `${typeName}: decoded value does not re-encode: ${String(e)}`,
          {
            typeName,
          },
        );
      }
      if (!equalBytes(reencoded, bytes)) {
        throw new DecodeError('DECODE_NON_CANONICAL', `${typeName}: input is not the canonical encoding`, {
          typeName,
        });
      }
      return value;
    },
    hashTreeRoot(value: T): Uint8Array {
      return type.hashTreeRoot(value);
    },
    equals(a: T, b: T): boolean {
      return type.equals(a, b);
    },
    defaultValue(): T {
      return type.defaultValue();
    },
  };
}

/** The value type a codec decodes to: `type Foo = CodecValue<typeof Foo>`. */
// biome-ignore lint/suspicious/noExplicitAny: matches any SSZ type parameter.
export type CodecValue<C> = C extends Codec<infer T, any> ? T : never;
