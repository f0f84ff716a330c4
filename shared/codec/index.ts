export * from './codec.ts';
export * from './domain.ts';
export * from './primitives.ts';
