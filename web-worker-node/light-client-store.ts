/**
 * IndexedDB persistence for the browser light client (shared/chain/light-client.ts), on `idb`.
 * Records are stored as their canonical SSZ bytes and decoded through the codecs on read, so a
 * corrupted or tampered database yields a typed error, never a half-read object; the light client
 * re-verifies certificates and proofs on read anyway.
 */
import { type DBSchema, type IDBPDatabase, openDB } from 'idb';
import { outpointKey } from '../shared/chain/ids.ts';
import type { LightClientStore, StoredHeader, WalletOutput } from '../shared/chain/light-client.ts';
import { BlockHeader, FinalityCertificate, OutPoint, TxOut } from '../shared/chain/types.ts';
import { StateProof } from '../shared/state/state-tree.ts';

interface LightClientDb extends DBSchema {
  headers: { key: number; value: { height: number; header: Uint8Array; certificate: Uint8Array } };
  outputs: {
    key: string;
    value: { key: string; outpoint: Uint8Array; out: Uint8Array; provenAt: number; proof: Uint8Array };
  };
}

const DB_VERSION = 1;

export class IdbLightClientStore implements LightClientStore {
  private constructor(private readonly db: IDBPDatabase<LightClientDb>) {}

  /** Opens (creating if needed) the light-client database `name`, one per chain id. */
  static async open(name: string): Promise<IdbLightClientStore> {
    const db = await openDB<LightClientDb>(name, DB_VERSION, {
      upgrade(db) {
        db.createObjectStore('headers', { keyPath: 'height' });
        db.createObjectStore('outputs', { keyPath: 'key' });
      },
    });
    return new IdbLightClientStore(db);
  }

  close(): void {
    this.db.close();
  }

  async putHeader(h: StoredHeader): Promise<void> {
    await this.db.put('headers', {
      height: Number(h.header.height),
      header: BlockHeader.encode(h.header),
      certificate: FinalityCertificate.encode(h.certificate),
    });
  }

  async getHeader(height: bigint): Promise<StoredHeader | undefined> {
    const r = await this.db.get('headers', Number(height));
    if (r === undefined) return undefined;
    return { header: BlockHeader.decode(r.header), certificate: FinalityCertificate.decode(r.certificate) };
  }

  async latestHeight(): Promise<bigint | undefined> {
    const cursor = await this.db.transaction('headers').store.openCursor(null, 'prev');
    return cursor === null ? undefined : BigInt(cursor.value.height);
  }

  async putOutput(o: WalletOutput): Promise<void> {
    await this.db.put('outputs', {
      key: outpointKey(o.outpoint),
      outpoint: OutPoint.encode(o.outpoint),
      out: TxOut.encode(o.out),
      provenAt: Number(o.provenAt),
      proof: StateProof.encode(o.proof),
    });
  }

  async deleteOutput(key: string): Promise<void> {
    await this.db.delete('outputs', key);
  }

  async listOutputs(): Promise<WalletOutput[]> {
    const rows = await this.db.getAll('outputs');
    return rows.map((r) => ({
      outpoint: OutPoint.decode(r.outpoint),
      out: TxOut.decode(r.out),
      provenAt: BigInt(r.provenAt),
      proof: StateProof.decode(r.proof),
    }));
  }
}
