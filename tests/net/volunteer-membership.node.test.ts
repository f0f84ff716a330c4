/**
 * The membership objects of ADR 0012 (shared/net/join.ts), as a volunteer and a supervisor check
 * them: a join verifies only under the miner key it names; a miner set only when signed by the
 * task's lead (member taskId[0] mod n of the genesis committee), for this task, keys strictly
 * ascending; and the wire bodies refuse truncated, oversized and non-canonical bytes with typed errors.
 */
import { assert, describe, it } from '#test';
import { utf8 } from '../../shared/bytes.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import {
  checkJoin,
  checkMinerSet,
  datasetUrl,
  JoinRequest,
  JoinResponse,
  leadIndex,
  type SignedMinerSet,
  SignedMinerSet as SignedMinerSetCodec,
  signJoin,
  signMinerSet,
  sortMinerKeys,
} from '../../shared/net/join.ts';

const CHAIN = 'pouw-membership-test';
const seeds = [1, 2, 3, 4].map((i) => new Uint8Array(32).fill(i));
const taskId = new Uint8Array(32).fill(0x07); // lead = 7 mod 4 = 3

describe('task membership objects', () => {
  it('a join verifies only under the miner key it names, on its chain', async () => {
    const minerKey = await nobleEd25519.getPublicKey(seeds[0]!);
    const join = await signJoin(
      CHAIN,
      { taskId, minerKey, payout: new Uint8Array(20) },
      seeds[0]!,
      nobleEd25519,
    );
    await checkJoin(CHAIN, join, nobleEd25519);
    await assert.rejects(() => checkJoin('pouw-other-chain', join, nobleEd25519), {
      code: 'CRYPTO_BAD_SIGNATURE',
    });
    const stolen = { ...join, body: { ...join.body, minerKey: await nobleEd25519.getPublicKey(seeds[1]!) } };
    await assert.rejects(() => checkJoin(CHAIN, stolen, nobleEd25519), { code: 'CRYPTO_BAD_SIGNATURE' });
    const repaid = { ...join, body: { ...join.body, payout: new Uint8Array(20).fill(1) } };
    await assert.rejects(() => checkJoin(CHAIN, repaid, nobleEd25519), { code: 'CRYPTO_BAD_SIGNATURE' });
  });

  it('a miner set counts only from the task’s lead, for this task, in strict order', async () => {
    const nodeKeys = await Promise.all(seeds.map((s) => nobleEd25519.getPublicKey(s)));
    const lead = leadIndex(taskId, 4);
    assert.equal(lead, 3);
    const miners = sortMinerKeys([
      new Uint8Array(32).fill(9),
      new Uint8Array(32).fill(5),
      new Uint8Array(32).fill(9),
    ]);
    assert.equal(miners.length, 2, 'duplicates removed');
    const good = await signMinerSet(CHAIN, { taskId, lead, miners }, seeds[lead]!, nobleEd25519);
    await checkMinerSet(CHAIN, nodeKeys, good, nobleEd25519, taskId);

    const other = new Uint8Array(32).fill(0x08);
    await assert.rejects(() => checkMinerSet(CHAIN, nodeKeys, good, nobleEd25519, other), {
      code: 'NET_BAD_REQUEST',
    });
    // Signed by a member that is not the lead, even with a valid signature of its own.
    const byOther = await signMinerSet(CHAIN, { taskId, lead: 1, miners }, seeds[1]!, nobleEd25519);
    await assert.rejects(() => checkMinerSet(CHAIN, nodeKeys, byOther, nobleEd25519), {
      code: 'NET_BAD_REQUEST',
    });
    // Claims the lead's index but another member signed.
    const forged = await signMinerSet(CHAIN, { taskId, lead, miners }, seeds[0]!, nobleEd25519);
    await assert.rejects(() => checkMinerSet(CHAIN, nodeKeys, forged, nobleEd25519), {
      code: 'CRYPTO_BAD_SIGNATURE',
    });
    // A miner slipped in after signing.
    const grown: SignedMinerSet = {
      ...good,
      body: { ...good.body, miners: [...miners, new Uint8Array(32).fill(0xee)] },
    };
    await assert.rejects(() => checkMinerSet(CHAIN, nodeKeys, grown, nobleEd25519), {
      code: 'CRYPTO_BAD_SIGNATURE',
    });
    // Out of order or empty: malformed before any signature is checked.
    const reversed: SignedMinerSet = { ...good, body: { ...good.body, miners: [...miners].reverse() } };
    await assert.rejects(() => checkMinerSet(CHAIN, nodeKeys, reversed, nobleEd25519), {
      code: 'NET_MALFORMED',
    });
    await assert.rejects(
      () => signMinerSet(CHAIN, { taskId, lead, miners: [] }, seeds[lead]!, nobleEd25519),
      {
        code: 'NET_MALFORMED',
      },
    );
  });

  it('wire bodies refuse truncated, oversized and non-canonical bytes with typed errors', async () => {
    const request = JoinRequest.encode({ taskId, join: null });
    assert.throws(() => JoinRequest.decode(request.subarray(0, request.length - 1)), { name: 'DecodeError' });
    const set = SignedMinerSetCodec.encode(
      await signMinerSet(CHAIN, { taskId, lead: 3, miners: [new Uint8Array(32)] }, seeds[3]!, nobleEd25519),
    );
    assert.throws(() => SignedMinerSetCodec.decode(new Uint8Array([...set, 0])), { name: 'DecodeError' });
    assert.throws(() => JoinResponse.decode(new Uint8Array(JoinResponse.maxSize + 1)), {
      code: 'DECODE_OVERSIZED',
    });
    assert.throws(() => datasetUrl({ url: new Uint8Array([0xff, 0xfe]), segments: 1, testSegments: [] }), {
      code: 'NET_MALFORMED',
    });
    assert.equal(datasetUrl({ url: utf8('data/x.gz'), segments: 1, testSegments: [] }), 'data/x.gz');
    assert.throws(() => leadIndex(new Uint8Array(31), 4), { code: 'NET_MALFORMED' });
  });
});
