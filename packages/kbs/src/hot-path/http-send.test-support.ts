import { request as httpRequest } from 'node:http';

/** A raw HTTP answer: status, node's parsed headers, body text. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface SendOptions {
  body?: string;
  headers?: Record<string, string>;
  /** Send the body in two writes without a content-length (Transfer-Encoding: chunked). */
  chunked?: boolean;
}

/** One request over a real socket to 127.0.0.1:`port`, with node's own client (no fetch layer). */
export function sendHttp(port: number, method: string, path: string, opts: SendOptions = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (opts.body !== undefined) {
      if (opts.chunked === true) {
        const half = Math.floor(opts.body.length / 2);
        req.write(opts.body.slice(0, half));
        req.write(opts.body.slice(half));
      } else {
        req.setHeader('content-length', Buffer.byteLength(opts.body));
        req.write(opts.body);
      }
    }
    req.end();
  });
}
