/**
 * JSON-line logs on stdout: one object per line with `time`, `level`, `msg` and fields. `notice`
 * lines (start, stop) are written whatever the level: tools read the multiaddrs from them.
 */
import type { LogLevel } from './config.ts';

const ORDER: Record<LogLevel | 'notice', number> = { debug: 10, info: 20, warn: 30, error: 40, notice: 100 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  notice(msg: string, fields?: LogFields): void;
}

export function jsonLogger(
  level: LogLevel,
  write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel | 'notice', msg: string, fields: LogFields = {}) => {
    if (ORDER[lvl] < min) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }, (_k, v) =>
      typeof v === 'bigint' ? v.toString() : v instanceof Error ? { name: v.name, message: v.message } : v,
    );
    write(`${line}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    notice: (m, f) => emit('notice', m, f),
  };
}
