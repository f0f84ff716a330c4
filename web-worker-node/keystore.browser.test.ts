import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { openDB } from 'idb';
import { assert, describe, it } from '#test';
import { bytesToHex } from '../shared/bytes.ts';
import { addressFromPublicKey } from '../shared/crypto/address.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { walletFromMnemonic } from '../shared/crypto/mnemonic.ts';
import { Keystore } from './keystore.ts';

const freshName = () => `keystore-test-${crypto.getRandomValues(new Uint32Array(1))[0]}`;

function deleteDb(name: string): Promise<void> {
  return new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(name);
    req.onsuccess = () => resolve();
    req.onerror = () => resolve();
  });
}

/** Writes a raw record into the keystore's object store, as another script (or bit rot) might. */
async function writeRaw(name: string, record: Record<string, unknown>): Promise<void> {
  const db = await openDB(name, 1);
  await db.put('keys', record);
  db.close();
}

describe('keystore on IndexedDB (Chromium)', () => {
  it('creates the node identity and the wallet once; both survive a reopen', async () => {
    const name = freshName();
    try {
      const ks = await Keystore.open(name);
      const node = await ks.nodeIdentity();
      const wallet = await ks.wallet();
      assert.equal(node.secretKey.length, 32);
      assert.deepEqual(await nobleEd25519.getPublicKey(node.secretKey), node.publicKey);
      assert.ok(wallet.address.startsWith('pouw1'));
      assert.equal(wallet.address, addressFromPublicKey(wallet.publicKey));
      assert.equal(wallet.addressBytes.length, 20);
      const phrase = await ks.exportMnemonic();
      assert.equal(phrase.split(' ').length, 24);
      assert.equal((await walletFromMnemonic(phrase)).primary.address, wallet.address);
      // Asking again does not create new keys.
      assert.deepEqual((await ks.nodeIdentity()).publicKey, node.publicKey);
      assert.equal((await ks.wallet()).address, wallet.address);
      ks.close();

      // A new page session (a reload): the same keys come back from IndexedDB.
      const again = await Keystore.open(name);
      assert.deepEqual((await again.nodeIdentity()).secretKey, node.secretKey);
      assert.equal((await again.wallet()).address, wallet.address);
      assert.equal(await again.exportMnemonic(), phrase);
      again.close();

      // The node seed is a libp2p Ed25519 identity: the same public key, so a stable peer id.
      const libp2pKey = await generateKeyPairFromSeed('Ed25519', node.secretKey);
      assert.equal(bytesToHex(libp2pKey.publicKey.raw), bytesToHex(node.publicKey));
    } finally {
      await deleteDb(name);
    }
  });

  it('two sessions opening a fresh profile at once agree on one set of keys', async () => {
    const name = freshName();
    try {
      const [a, b] = await Promise.all([Keystore.open(name), Keystore.open(name)]);
      const [na, nb, wa, wb] = await Promise.all([
        a!.nodeIdentity(),
        b!.nodeIdentity(),
        a!.wallet(),
        b!.wallet(),
      ]);
      assert.deepEqual(na.publicKey, nb.publicKey);
      assert.equal(wa.address, wb.address);
      a!.close();
      b!.close();
    } finally {
      await deleteDb(name);
    }
  });

  it('imports a mnemonic (a bad one changes nothing) and exports it back', async () => {
    const name = freshName();
    try {
      const ks = await Keystore.open(name);
      const before = await ks.wallet();
      const typo = 'abandon '.repeat(11).concat('abandoned');
      await assert.rejects(() => ks.importMnemonic(typo), {
        name: 'CryptoError',
        code: 'CRYPTO_BAD_MNEMONIC',
      });
      assert.equal((await ks.wallet()).address, before.address);
      const phrase = 'legal winner thank year wave sausage worth useful legal winner thank yellow';
      const restored = await ks.importMnemonic(
        `  Legal winner  thank year wave sausage worth useful legal winner thank yellow `,
      );
      assert.equal(restored.address, (await walletFromMnemonic(phrase)).primary.address);
      assert.equal(await ks.exportMnemonic(), phrase);
      ks.close();
      const again = await Keystore.open(name);
      assert.equal((await again.wallet()).address, restored.address);
      again.close();
    } finally {
      await deleteDb(name);
    }
  });

  it('a corrupt or tampered record is a typed error and is never replaced silently', async () => {
    const name = freshName();
    try {
      const ks = await Keystore.open(name);
      const node = await ks.nodeIdentity();
      const wallet = await ks.wallet();
      const phrase = await ks.exportMnemonic();
      ks.close();
      const corrupt = { name: 'VolunteerError', code: 'KEYSTORE_CORRUPT' };

      // A seed cut short, a public key that is not the seed's, a record of an unknown version.
      const cases: Record<string, unknown>[] = [
        { id: 'node', version: 1, seed: node.secretKey.slice(1), publicKey: node.publicKey, createdAt: 0 },
        {
          id: 'node',
          version: 1,
          seed: node.secretKey,
          publicKey: node.publicKey.map((x, i) => (i === 0 ? x ^ 1 : x)),
          createdAt: 0,
        },
        { id: 'node', version: 9, seed: node.secretKey, publicKey: node.publicKey, createdAt: 0 },
      ];
      for (const c of cases) {
        await writeRaw(name, c);
        const reopened = await Keystore.open(name);
        await assert.rejects(() => reopened.nodeIdentity(), corrupt);
        reopened.close();
      }
      // A phrase with a swapped word (checksum fails), and an address that is not the phrase's.
      const words = phrase.split(' ');
      [words[0], words[1]] = [words[1]!, words[0]!];
      for (const c of [
        { id: 'wallet', version: 1, mnemonic: words.join(' '), address: wallet.address, createdAt: 0 },
        {
          id: 'wallet',
          version: 1,
          mnemonic: phrase,
          address: addressFromPublicKey(node.publicKey),
          createdAt: 0,
        },
        { id: 'wallet', version: 1, mnemonic: 42, address: wallet.address, createdAt: 0 },
      ]) {
        await writeRaw(name, c);
        const reopened = await Keystore.open(name);
        await assert.rejects(() => reopened.wallet(), corrupt);
        await assert.rejects(() => reopened.exportMnemonic(), corrupt);
        // Still corrupt on the next read: nothing was overwritten.
        await assert.rejects(() => reopened.wallet(), corrupt);
        reopened.close();
      }
      // An explicit import repairs the wallet; an explicit reset repairs the node identity.
      const repaired = await Keystore.open(name);
      assert.equal((await repaired.importMnemonic(phrase)).address, wallet.address);
      const fresh = await repaired.resetNodeIdentity();
      assert.notEqual(bytesToHex(fresh.publicKey), bytesToHex(node.publicKey));
      repaired.close();
    } finally {
      await deleteDb(name);
    }
  });
});
