/** Machine and runtime details recorded with every benchmark result. */
import { arch, cpus, freemem, loadavg, platform, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  os: string;
  runtime: string;
  /** 1-minute load average when measured: other processes make timings noisy. */
  loadAverage: number;
}

export function machineInfo(): MachineInfo {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    freeMemoryGiB: +(freemem() / 2 ** 30).toFixed(1),
    os: `${platform()} ${release()} ${arch()}`,
    runtime: `node ${process.version}`,
    loadAverage: +loadavg()[0]!.toFixed(2),
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, ${m.runtime}, load ${m.loadAverage}`;
}
