export * from './certificate.ts';
export * from './committee.ts';
export * from './errors.ts';
export * from './messages.ts';
export * from './tendermint.ts';
export * from './types.ts';
