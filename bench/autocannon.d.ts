// The part of autocannon's API the benchmarks use (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    headers?: Record<string, string>;
  }
  interface Result {
    non2xx: number;
    requests: { average: number };
    latency: { p50: number; average: number };
  }
  export default function autocannon(opts: Options): Promise<Result>;
}
