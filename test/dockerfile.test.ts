// The Dockerfile against package.json: the image builds and starts with the package's own scripts,
// as a non-root user with its data directory a volume and a health check on readiness.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ROOT } from './helpers/project.js'

interface Instruction { keyword: string, args: string }

/** The Dockerfile's instructions by stage: comments dropped, continuation lines joined. */
function dockerStages (text: string): Instruction[][] {
  const logical = text.split('\n').filter(line => !line.trimStart().startsWith('#')).join('\n').replace(/\\\n/g, ' ')
  const stages: Instruction[][] = []
  for (const line of logical.split('\n')) {
    const match = /^\s*([A-Z]+)\s+(.*)$/.exec(line)
    if (match === null) continue
    const instruction = { keyword: match[1], args: match[2].replace(/\s+/g, ' ').trim() }
    if (instruction.keyword === 'FROM') stages.push([])
    stages[stages.length - 1].push(instruction)
  }
  return stages
}

t.test('the Dockerfile builds and starts with the package.json scripts', async t => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>, bin: Record<string, string> }
  const stages = dockerStages(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))
  t.ok(stages.length >= 2, 'multi-stage')
  const build = stages[0]
  const final = stages[stages.length - 1]
  const args = (stage: Instruction[], keyword: string): string[] => stage.filter(i => i.keyword === keyword).map(i => i.args)

  for (const stage of stages) t.match(stage[0].args, /^node:20-slim(\s|$)/, `${stage[0].args}: a Node 20 slim image`)

  t.ok(args(build, 'RUN').includes('npm run build'), 'the build stage runs npm run build')
  t.type(pkg.scripts.build, 'string', 'which package.json defines')
  const copiedForBuild = args(build, 'COPY').flatMap(c => c.split(' ').slice(0, -1))
  for (const project of pkg.scripts.build.matchAll(/-p (\S+)/g)) t.ok(copiedForBuild.includes(project[1]), `${project[1]}, which the build compiles by, is copied in`)
  t.ok(args(build, 'RUN').some(r => /^npm ci\b/.test(r) && !r.includes('--omit=dev')), 'with dev dependencies (the compiler) installed')

  t.ok(args(final, 'RUN').some(r => /^npm ci\b.*--omit=dev/.test(r)), 'the final stage installs production dependencies only')
  const cmd = args(final, 'CMD')
  t.equal(cmd.length, 1, 'one CMD')
  const command = (JSON.parse(cmd[0]) as string[]).join(' ')
  t.equal(command, pkg.scripts.start, 'CMD is package.json\'s start script')
  t.equal(pkg.scripts.prestart, 'npm run build', 'whose build step (prestart) the image did at build time')
  const script = command.split(' ')[1]
  t.equal(Object.values(pkg.bin)[0], script, 'the script started is the package\'s bin')
  const copiedFromBuild = args(final, 'COPY').filter(c => c.startsWith('--from=build ')).map(c => c.split(' ').at(-1) as string)
  t.ok(copiedFromBuild.some(dest => script.startsWith(path.posix.normalize(dest) + '/')), `${script} is copied from the build stage`)

  const users = args(final, 'USER')
  t.equal(users.length, 1, 'a USER')
  t.notMatch(users[0], /^(root|0)(:|$)/, 'that is not root')
  const env = Object.fromEntries(args(final, 'ENV').flatMap(e => [...e.matchAll(/(\w+)=(\S+)/g)].map(m => [m[1], m[2]])))
  t.equal(env.VECWAL_HOST, '0.0.0.0', 'listens on every interface in the container')
  const volumes = args(final, 'VOLUME').flatMap(v => JSON.parse(v) as string[])
  t.ok(volumes.includes(env.VECWAL_DATA_DIR), `the data directory ${String(env.VECWAL_DATA_DIR)} is a volume`)
  t.ok(args(final, 'RUN').some(r => r.includes(`chown ${users[0]}:${users[0]} ${String(env.VECWAL_DATA_DIR)}`)), 'owned by that user')
  t.same(args(final, 'EXPOSE'), [env.VECWAL_PORT], 'the port exposed is the one served')
  const healthcheck = args(final, 'HEALTHCHECK')
  t.equal(healthcheck.length, 1)
  t.match(healthcheck[0], /CMD .*\/health\/ready/, 'HEALTHCHECK asks /health/ready')
})
