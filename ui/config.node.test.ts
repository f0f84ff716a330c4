import { assert, describe, it } from '#test';
import { parseConfig } from './config.ts';
import { formatAmount, shortAddress } from './format.ts';

describe('UI config and formatting', () => {
  it('selects the network from the URL; bad parameters are typed errors', () => {
    assert.deepEqual(parseConfig(''), {
      source: { kind: 'demo', peers: 1 },
      backend: undefined,
      dutyCycle: undefined,
    });
    assert.deepEqual(parseConfig('?peers=0&backend=wasm&duty=0.25'), {
      source: { kind: 'demo', peers: 0 },
      backend: 'wasm',
      dutyCycle: 0.25,
    });
    const relay = '/ip4/127.0.0.1/tcp/9001/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN';
    assert.deepEqual(parseConfig(`?relay=${encodeURIComponent(relay)}`), {
      source: { kind: 'relay', relay },
      backend: undefined,
      dutyCycle: undefined,
    });
    const bads = [
      '?relay=not-a-multiaddr',
      '?peers=9',
      '?peers=x',
      '?backend=tpu',
      '?duty=0',
      '?duty=1.5',
      '?duty=x',
    ];
    for (const bad of bads)
      assert.throws(() => parseConfig(bad), { name: 'NetError', code: 'NET_BAD_CONFIG' }, bad);
  });

  it('formats amounts with 8 decimals and shortens addresses', () => {
    assert.equal(formatAmount(50_0000_0000n), '50');
    assert.equal(formatAmount(1_2345_0000n), '1.2345');
    assert.equal(formatAmount(1n), '0.00000001');
    assert.equal(formatAmount(1234_0000_0000n), '1,234');
    assert.equal(shortAddress('pouw1une8vdlvvz0j0hu00dlpchevefsw8e3tgfwfv8'), 'pouw1une8v…gfwfv8');
  });
});
