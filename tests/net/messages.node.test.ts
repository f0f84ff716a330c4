/**
 * shared/net/messages.ts: every protocol's request and response body round-trips through its codec,
 * rejects truncated, oversized and non-canonical bytes with a typed DecodeError, and the response
 * envelope maps server outcomes to typed NetErrors on the client.
 */

import { assert, describe, it } from '#test';
import { utf8 } from '../../shared/bytes.ts';
import { LedgerError, NetError } from '../../shared/errors.ts';
import {
  BODIES,
  type BodyProtocol,
  envelopeForError,
  errorEnvelope,
  MAX_ERROR_MESSAGE_BYTES,
  okEnvelope,
  openEnvelope,
  ResponseEnvelope,
  ResponseStatus,
  requestLimit,
} from '../../shared/net/messages.ts';
import { MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES } from '../../shared/net/protocols.ts';

describe('network message bodies', () => {
  for (const name of Object.keys(BODIES) as BodyProtocol[]) {
    for (const side of ['request', 'response'] as const) {
      const codec = BODIES[name][side];
      it(`${name} ${side} (${codec.typeName}) round-trips and rejects bad bytes`, () => {
        const value = codec.defaultValue();
        const bytes = codec.encode(value as never);
        assert.deepEqual(codec.decode(bytes), value);
        if (bytes.length > 0) {
          assert.throws(() => codec.decode(bytes.subarray(0, bytes.length - 1)), { name: 'DecodeError' });
        }
        const longer = new Uint8Array(bytes.length + 1);
        longer.set(bytes);
        // One more byte is rejected, or (a trailing byte list absorbing it) decodes to a value
        // whose canonical encoding is exactly those bytes: never silently reinterpreted.
        for (const candidate of [longer, Uint8Array.from(longer, (_, i) => (i * 131 + 7) & 0xff)]) {
          try {
            const v = codec.decode(candidate);
            assert.deepEqual(codec.encode(v as never), candidate);
          } catch (e) {
            assert.equal((e as Error).name, 'DecodeError');
          }
        }
        assert.throws(() => codec.decode(new Uint8Array(codec.maxSize + 1)), {
          name: 'DecodeError',
          code: 'DECODE_OVERSIZED',
        });
      });
    }
  }

  it('requests are bounded by MAX_REQUEST_BYTES except candidates, which carry IT_RES', () => {
    assert.equal(requestLimit('status'), MAX_REQUEST_BYTES);
    assert.equal(requestLimit('submitTx'), MAX_REQUEST_BYTES);
    assert.equal(requestLimit('candidate'), MAX_RESPONSE_BYTES);
  });

  it('an OK envelope opens to its body; error envelopes open to typed NetErrors', () => {
    const body = utf8('hello');
    assert.deepEqual(openEnvelope(okEnvelope(body)), body);
    const cases: [number, string, string][] = [
      [ResponseStatus.invalid, 'NET_BAD_REQUEST', 'REJECT'],
      [ResponseStatus.notFound, 'NET_NOT_FOUND', 'IGNORE'],
      [ResponseStatus.unavailable, 'NET_UNAVAILABLE', 'IGNORE'],
      [ResponseStatus.error, 'NET_REMOTE_ERROR', 'IGNORE'],
    ];
    for (const [status, code, verdict] of cases) {
      const e = assert.throws(
        () => openEnvelope(errorEnvelope(status as ResponseStatus, 'TX_OVERSPEND', 'too much')),
        {
          name: 'NetError',
          code,
          verdict: verdict as 'REJECT' | 'IGNORE',
        },
      ) as NetError;
      assert.equal(e.detail['remoteCode'], 'TX_OVERSPEND');
    }
    assert.throws(
      () =>
        openEnvelope(
          ResponseEnvelope.encode({
            status: 9,
            errorCode: new Uint8Array(0),
            message: new Uint8Array(0),
            body: new Uint8Array(0),
          }),
        ),
      { code: 'NET_MALFORMED' },
    );
    assert.throws(
      () =>
        openEnvelope(
          ResponseEnvelope.encode({
            status: 0,
            errorCode: utf8('X'),
            message: new Uint8Array(0),
            body: new Uint8Array(0),
          }),
        ),
      { code: 'NET_MALFORMED' },
    );
    assert.throws(() => openEnvelope(new Uint8Array([0, 1, 2])), { name: 'DecodeError' });
  });

  it('servers turn thrown errors into envelopes: typed codes pass through, untyped ones stay private', () => {
    const tx = ResponseEnvelope.decode(envelopeForError(new LedgerError('TX_OVERSPEND', 'spends 5, has 4')));
    assert.equal(tx.status, ResponseStatus.invalid);
    assert.equal(new TextDecoder().decode(tx.errorCode), 'TX_OVERSPEND');
    const nf = ResponseEnvelope.decode(envelopeForError(new NetError('NET_NOT_FOUND', 'no block', 'IGNORE')));
    assert.equal(nf.status, ResponseStatus.notFound);
    const late = ResponseEnvelope.decode(
      envelopeForError(new LedgerError('BLOCK_BAD_HEIGHT', 'decided', 'IGNORE')),
    );
    assert.equal(late.status, ResponseStatus.unavailable, 'valid but not useful now');
    assert.equal(new TextDecoder().decode(late.errorCode), 'BLOCK_BAD_HEIGHT');
    const bug = ResponseEnvelope.decode(envelopeForError(new TypeError('secret path /x/y')));
    assert.equal(bug.status, ResponseStatus.error);
    assert.ok(!new TextDecoder().decode(bug.message).includes('/x/y'));
    const long = ResponseEnvelope.decode(errorEnvelope(ResponseStatus.invalid, 'X', 'é'.repeat(400)));
    assert.ok(long.message.length <= MAX_ERROR_MESSAGE_BYTES);
    new TextDecoder('utf-8', { fatal: true }).decode(long.message); // cut on a character boundary
  });
});
