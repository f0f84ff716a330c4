/**
 * Browser light client: holds finalized headers (each with the certificate it verified) and the
 * wallet's own outputs with their proofs. It never takes a relay's or supervisor's word: a header
 * is kept only if the committee's group signature over it verifies, and a balance is accepted only
 * from outputs proven against such a header's stateRoot. A server can hide outputs from a wallet
 * (proofs are per outpoint) but cannot invent or inflate one; spent outputs are dropped only with a
 * proof of absence at a later verified height.
 */
import { equalBytes } from '../bytes.ts';
import { LedgerError } from '../errors.ts';
import { type StateProof, verifyProof } from '../state/state-tree.ts';
import { verifyCertificate } from './certificate.ts';
import { blockHash, outpointKey, stateKey, stateValue } from './ids.ts';
import { type BlockHeader, type FinalityCertificate, LockKind, type OutPoint, type TxOut } from './types.ts';

export interface StoredHeader {
  header: BlockHeader;
  certificate: FinalityCertificate;
}

export interface WalletOutput {
  outpoint: OutPoint;
  out: TxOut;
  /** Height of the verified header the proof was checked against. */
  provenAt: bigint;
  proof: StateProof;
}

/** Persistence for the light client (IndexedDB in browsers, memory in tests). */
export interface LightClientStore {
  putHeader(h: StoredHeader): Promise<void>;
  getHeader(height: bigint): Promise<StoredHeader | undefined>;
  latestHeight(): Promise<bigint | undefined>;
  putOutput(o: WalletOutput): Promise<void>;
  deleteOutput(outpointKey: string): Promise<void>;
  listOutputs(): Promise<WalletOutput[]>;
}

export interface LightClientConfig {
  chainId: string;
  groupPublicKey: Uint8Array;
  blsVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

export interface ProvenOutput {
  outpoint: OutPoint;
  out: TxOut;
  proof: StateProof;
}

export interface Balance {
  /** Spendable now (unlocked, or stakes past their lock at the verified height). */
  spendable: bigint;
  staked: bigint;
  escrowed: bigint;
  /** Height of the verified header the newest proofs were checked against. */
  height: bigint | undefined;
}

export class LightClient {
  constructor(
    private readonly config: LightClientConfig,
    private readonly store: LightClientStore,
  ) {}

  /** Verifies the certificate for `header` and stores both; throws LedgerError (CERT_*) otherwise. */
  async addFinalizedHeader(header: BlockHeader, certificate: FinalityCertificate): Promise<void> {
    verifyCertificate(certificate, {
      chainId: this.config.chainId,
      height: header.height,
      blockHash: blockHash(this.config.chainId, header),
      groupPublicKey: this.config.groupPublicKey,
      blsVerify: this.config.blsVerify,
    });
    await this.store.putHeader({ header, certificate });
  }

  /** A stored header, re-verified on read: storage is not trusted more than the network. */
  async verifiedHeader(height: bigint): Promise<BlockHeader> {
    const stored = await this.store.getHeader(height);
    if (stored === undefined)
      throw new LedgerError('CERT_MISSING', `no verified header at height ${height}`, 'IGNORE');
    verifyCertificate(stored.certificate, {
      chainId: this.config.chainId,
      height,
      blockHash: blockHash(this.config.chainId, stored.header),
      groupPublicKey: this.config.groupPublicKey,
      blsVerify: this.config.blsVerify,
    });
    return stored.header;
  }

  /** Checks one output's inclusion proof against the verified header at `height`. */
  async checkOutput(height: bigint, p: ProvenOutput): Promise<void> {
    const header = await this.verifiedHeader(height);
    const result = verifyProof(header.stateRoot, stateKey(this.config.chainId, p.outpoint), p.proof);
    if (!result.included || !equalBytes(result.valueHash, stateValue(this.config.chainId, p.out))) {
      throw new LedgerError(
        'BLOCK_BAD_STATE_ROOT',
        'output is not in the state of the verified header',
        'REJECT',
        {
          outpoint: outpointKey(p.outpoint),
        },
      );
    }
  }

  /**
   * Updates the wallet from a server's answer at `height`: every present output must prove inclusion,
   * every dropped one must prove absence. Nothing is stored unless all proofs check.
   */
  async applyWalletUpdate(
    height: bigint,
    present: readonly ProvenOutput[],
    spent: readonly { outpoint: OutPoint; proof: StateProof }[] = [],
  ): Promise<void> {
    const header = await this.verifiedHeader(height);
    for (const p of present) await this.checkOutput(height, p);
    for (const s of spent) {
      const r = verifyProof(header.stateRoot, stateKey(this.config.chainId, s.outpoint), s.proof);
      if (r.included) {
        throw new LedgerError(
          'BLOCK_BAD_STATE_ROOT',
          'claimed spent output is still in the state',
          'REJECT',
          {
            outpoint: outpointKey(s.outpoint),
          },
        );
      }
    }
    for (const s of spent) await this.store.deleteOutput(outpointKey(s.outpoint));
    for (const p of present) await this.store.putOutput({ ...p, provenAt: height });
  }

  /**
   * Balance of `owner` (20-byte address) from stored outputs, each re-checked against its verified
   * header. Outputs whose proof no longer checks are not counted.
   */
  async balance(owner: Uint8Array): Promise<Balance> {
    let spendable = 0n;
    let staked = 0n;
    let escrowed = 0n;
    let height: bigint | undefined;
    const latest = await this.store.latestHeight();
    for (const o of await this.store.listOutputs()) {
      if (!equalBytes(o.out.owner, owner)) continue;
      await this.checkOutput(o.provenAt, o);
      if (height === undefined || o.provenAt > height) height = o.provenAt;
      if (o.out.lockKind === LockKind.ESCROW) escrowed += o.out.value;
      else if (o.out.lockKind === LockKind.STAKE && (latest === undefined || o.out.lockUntil > latest + 1n))
        staked += o.out.value;
      else spendable += o.out.value;
    }
    return { spendable, staked, escrowed, height };
  }
}

/** In-memory store (tests, Node tools). */
export class MemoryLightClientStore implements LightClientStore {
  private readonly headers = new Map<bigint, StoredHeader>();
  private readonly outputs = new Map<string, WalletOutput>();
  async putHeader(h: StoredHeader): Promise<void> {
    this.headers.set(h.header.height, h);
  }
  async getHeader(height: bigint): Promise<StoredHeader | undefined> {
    return this.headers.get(height);
  }
  async latestHeight(): Promise<bigint | undefined> {
    let max: bigint | undefined;
    for (const h of this.headers.keys()) if (max === undefined || h > max) max = h;
    return max;
  }
  async putOutput(o: WalletOutput): Promise<void> {
    this.outputs.set(outpointKey(o.outpoint), o);
  }
  async deleteOutput(key: string): Promise<void> {
    this.outputs.delete(key);
  }
  async listOutputs(): Promise<WalletOutput[]> {
    return [...this.outputs.values()];
  }
}
