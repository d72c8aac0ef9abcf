// write.js: what the Next.js app writes to Redis in bench/e2e/resend.sh, for either side.
//
//   node write.js users|actions skene|bullmq FROM TO --redis URL [--stamps FILE]
//
// For the users uFROM..uTO (their rows, or their first project, row aN for user uN):
//   users   skene   MULTI; HSET users:uN name email activation_link; XADD skene:users * id uN; EXEC
//   users   bullmq  HSET users:uN (the same fields); then Queue.add of the user's activation job, as a
//                   sign-up handler does (`await redis.hset(...); await queue.add(...)`), 200
//                   sign-ups in flight at once
//   actions skene   MULTI; HSET user_actions:aN user_id uN action_type first_project_created;
//                   XADD skene:user_actions * id aN; EXEC
//   actions bullmq  MULTI; HSET user_actions:aN (the same fields);
//                   SADD user_actions_by_user:uN:first_project_created aN; EXEC
// Both sides' MULTI blocks go as raw RESP on one connection, 100 users per write and at most 4
// writes unanswered, so neither side's writer is slower than the other's. --stamps appends
// "uN <epoch µs>" per user: the time its MULTI was handed to the socket (the latency's start).
// Prints "wire N": the Redis commands it wrote (what Upstash bills the app for these writes,
// connection set-up included). Exit 1 on a Redis error.
'use strict';

const fs = require('fs');
const net = require('net');
const { performance } = require('perf_hooks');

const [kind, side, fromS, toS, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const from = Number(fromS), to = Number(toS);
if (!['users', 'actions'].includes(kind) || !['skene', 'bullmq'].includes(side) || !(from >= 1 && to >= from) || !opt.redis) {
  console.error('usage: node write.js users|actions skene|bullmq FROM TO --redis URL [--stamps FILE]');
  process.exit(2);
}
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const stamps = [];
let wire = 0;

function resp(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return s;
}
function userFields(i) {
  return ['name', `User ${i}`, 'email', `u${i}@example.com`, 'activation_link', `https://app.example/a/u${i}`];
}
function block(i) {
  const id = `u${i}`;
  if (kind === 'users') {
    return resp(['MULTI']) + resp(['HSET', `users:${id}`, ...userFields(i)]) +
      resp(['XADD', 'skene:users', '*', 'id', id]) + resp(['EXEC']);
  }
  const row = ['HSET', `user_actions:a${i}`, 'user_id', id, 'action_type', 'first_project_created'];
  const announce = side === 'skene' ? ['XADD', 'skene:user_actions', '*', 'id', `a${i}`]
    : ['SADD', `user_actions_by_user:${id}:first_project_created`, `a${i}`];
  return resp(['MULTI']) + resp(row) + resp(announce) + resp(['EXEC']);
}

// Counts complete top-level RESP replies in a byte stream; an error reply is fatal.
class ReplyCounter {
  constructor() { this.buf = Buffer.alloc(0); this.count = 0; }
  feed(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    for (;;) {
      const end = this.skip(pos);
      if (end < 0) break;
      pos = end;
      this.count++;
    }
    this.buf = this.buf.subarray(pos);
  }
  // The offset after the reply at pos, or -1 if it is not all there yet.
  skip(pos) {
    const nl = this.buf.indexOf('\r\n', pos);
    if (nl < 0) return -1;
    const type = String.fromCharCode(this.buf[pos]);
    const line = this.buf.toString('latin1', pos + 1, nl);
    if (type === '-') {
      console.error(`write.js: Redis error: ${line}`);
      process.exit(1);
    }
    if (type === '+' || type === ':') return nl + 2;
    const n = Number(line);
    if (type === '$') {
      if (n < 0) return nl + 2;
      return this.buf.length >= nl + 2 + n + 2 ? nl + 2 + n + 2 : -1;
    }
    if (type === '*') {
      let p = nl + 2;
      for (let k = 0; k < n; k++) {
        p = this.skip(p);
        if (p < 0) return -1;
      }
      return p;
    }
    console.error(`write.js: unexpected reply byte '${type}'`);
    process.exit(1);
  }
}

function writeRaw() {
  const u = new URL(opt.redis);
  const sock = net.connect(Number(u.port || 6379), u.hostname);
  const counter = new ReplyCounter();
  const perChunk = 100, window = 4, repliesPerUser = 4;
  let next = from, sentUsers = 0;
  return new Promise((resolve, reject) => {
    const pump = () => {
      while (next <= to && sentUsers - counter.count / repliesPerUser < window * perChunk) {
        const last = Math.min(to, next + perChunk - 1);
        let s = '';
        for (let i = next; i <= last; i++) s += block(i);
        const t = nowUs();
        for (let i = next; i <= last; i++) stamps.push(`u${i} ${t}`);
        sock.write(s);
        wire += (last - next + 1) * repliesPerUser;
        sentUsers += last - next + 1;
        next = last + 1;
      }
      if (counter.count >= (to - from + 1) * repliesPerUser) {
        sock.end();
        resolve();
      }
    };
    sock.on('connect', pump);
    sock.on('data', (d) => { counter.feed(d); pump(); });
    sock.on('error', reject);
  });
}

async function signupsBullmq() {
  const IORedis = require('ioredis');
  const { Queue } = require('bullmq');
  const toWritable = IORedis.Command.prototype.toWritable;
  IORedis.Command.prototype.toWritable = function (...args) {
    wire++;
    return toWritable.apply(this, args);
  };
  const u = new URL(opt.redis);
  const connection = { host: u.hostname, port: Number(u.port || 6379) };
  const redis = new IORedis(connection);
  const queue = new Queue('activation', { connection });
  let next = from;
  const signup = async () => {
    while (next <= to) {
      const i = next++;
      const id = `u${i}`;
      stamps.push(`${id} ${nowUs()}`);
      await redis.hset(`users:${id}`, ...userFields(i));
      await queue.add('activation', { userId: id, signedUpAt: Date.now() }, {
        jobId: `activation-${id}`, // one job per user, as Skene has one instance per (loop, subject)
        attempts: 3,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: true,
      });
    }
  };
  await Promise.all(Array.from({ length: 200 }, signup));
  await queue.close();
  await redis.quit();
}

(async () => {
  if (kind === 'users' && side === 'bullmq') await signupsBullmq();
  else await writeRaw();
  if (opt.stamps) fs.appendFileSync(opt.stamps, stamps.join('\n') + '\n');
  console.log(`wire ${wire}`);
})().catch((err) => {
  console.error(`write.js: ${err.message}`);
  process.exit(1);
});
