/**
 * How every test and benchmark launches Debian's Chromium: the system binary (never a download),
 * and flags that keep it off the network (this machine's network is closed) and enable WebGPU
 * (SwiftShader without a GPU).
 */
export const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export const chromiumArgs = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
];
