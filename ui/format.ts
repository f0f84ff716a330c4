/** Display helpers (the page's only formatting rules). */

/**
 * Base units as coins with 8 decimals (the block reward, 50·10^8 units, shows as 50). A display
 * convention of this page; the chain itself only knows integer units.
 */
export function formatAmount(units: bigint): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = abs / 100_000_000n;
  const frac = (abs % 100_000_000n).toString().padStart(8, '0').replace(/0+$/, '');
  return `${negative ? '−' : ''}${whole.toLocaleString('en-US')}${frac === '' ? '' : `.${frac}`}`;
}

export function formatNumber(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatPercent(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(1)} %`;
}

/** `pouw1abcd…wxyz` for narrow places; the full address stays in a title attribute. */
export function shortAddress(address: string): string {
  return address.length <= 20 ? address : `${address.slice(0, 10)}…${address.slice(-6)}`;
}
