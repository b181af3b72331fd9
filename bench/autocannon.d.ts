// The part of autocannon's API the benchmarks use (the package ships no types).
declare module 'autocannon' {
  export interface Options {
    url: string;
    connections?: number;
    duration?: number;
    amount?: number;
    headers?: Record<string, string>;
    method?: string;
    body?: string;
    /** Run the load generator in this many worker threads (off the caller's event loop). */
    workers?: number;
  }
  export interface Result {
    url: string;
    non2xx: number;
    errors: number;
    requests: { average: number; total: number };
    latency: { p50: number; p97_5: number; p99: number; average: number };
    statusCodeStats?: Record<string, { count: number }>;
  }
  export default function autocannon(opts: Options): Promise<Result>;
}
