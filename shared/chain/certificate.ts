/**
 * Finality certificates: `{chainId, height, blockHash, historyRoot, groupSignature}`, where the
 * signature is the committee's threshold BLS signature (any t partials combined) over the tagged
 * FinalityMessage. A light client checks one pairing per certificate and trusts nobody's word.
 */
import { equalBytes, utf8 } from '../bytes.ts';
import { signingMessage } from '../codec/domain.ts';
import { LedgerError } from '../errors.ts';
import { type FinalityCertificate, FinalityMessage } from './types.ts';

/** The 32-byte message every committee member's partial signature covers. */
export function finalityMessage(
  chainId: string,
  height: bigint,
  blockHash: Uint8Array,
  historyRoot: Uint8Array,
): Uint8Array {
  return signingMessage('pouw/finality/v1', chainId, FinalityMessage, { height, blockHash, historyRoot });
}

export interface CertificateExpectation {
  chainId: string;
  height: bigint;
  blockHash: Uint8Array;
  groupPublicKey: Uint8Array;
  blsVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

/** Throws a LedgerError naming the failed check, or returns normally. */
export function verifyCertificate(cert: FinalityCertificate, expect: CertificateExpectation): void {
  if (!equalBytes(cert.chainId, utf8(expect.chainId)))
    throw new LedgerError('CERT_BAD_CHAIN', 'certificate is for another chain');
  if (cert.height !== expect.height)
    throw new LedgerError('CERT_BAD_HEIGHT', `certificate height ${cert.height}, block ${expect.height}`);
  if (!equalBytes(cert.blockHash, expect.blockHash))
    throw new LedgerError('CERT_BAD_BLOCK_HASH', 'certificate finalizes another block');
  const message = finalityMessage(expect.chainId, cert.height, cert.blockHash, cert.historyRoot);
  if (!expect.blsVerify(expect.groupPublicKey, message, cert.groupSignature)) {
    throw new LedgerError('CERT_BAD_SIGNATURE', 'group signature does not verify against the committee key');
  }
}
