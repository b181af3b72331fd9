const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400, y: 365 * 86400 };

/**
 * Parses a duration such as `90d`, `12h`, `30m`, `2y` or a bare number of seconds into seconds;
 * undefined when malformed. One parser for the API and the CLI, so both accept the same forms.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^([0-9]{1,9})([smhdwy]?)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * (UNITS[m[2] || 's'] ?? 1);
}

/** The shortest exact rendering of a number of seconds (`43200` → `12h`). */
export function formatDuration(seconds: number): string {
  for (const unit of ['y', 'w', 'd', 'h', 'm'] as const) {
    const size = UNITS[unit] as number;
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
