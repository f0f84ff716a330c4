/** The protocol core's public surface, for bundles and other folders. */
export * as bytes from './bytes.ts';
export * as chain from './chain/index.ts';
export * as codec from './codec/index.ts';
export * as address from './crypto/address.ts';
export * as bls from './crypto/bls.ts';
export * as dkg from './crypto/dkg.ts';
export * as ecvrf from './crypto/ecvrf.ts';
export * as ed25519 from './crypto/ed25519.ts';
export * as mnemonic from './crypto/mnemonic.ts';
export * as thresholdBls from './crypto/threshold-bls.ts';
export * as errors from './errors.ts';
export * as stateTree from './state/state-tree.ts';
