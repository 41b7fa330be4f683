// Optional bearer tokens with scopes. Each route names the scope it needs in its config; with no
// tokens configured every route is open (and the service says so at start). Failed attempts are
// limited per client address (auth-failures.ts).
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AuthFailureTracker, type AuthFailureLimits } from './auth-failures.js'
import { ForbiddenError, TooManyAuthFailuresError, UnauthorizedError } from './errors.js'

export type Scope = 'read' | 'write' | 'admin'
/** What a route needs: a scope, or 'open' (health; metrics unless protected). */
export type RouteAccess = Scope | 'open' | 'metrics'

/** The scopes, and what each may do: admin everything, read and write only their own. */
const GRANTS: Record<Scope, ReadonlySet<Scope>> = {
  read: new Set(['read']),
  write: new Set(['write']),
  admin: new Set(['read', 'write', 'admin'])
}
const SCOPES = Object.keys(GRANTS) as Scope[]

/** Whether a route's access asks for a token's scope (rather than being open). */
export function isScope (access: RouteAccess | undefined): access is Scope {
  return access !== undefined && Object.hasOwn(GRANTS, access)
}

export interface TokenGrant { scope: Scope, token: string }

/** Parses `write:TOKEN1,read:TOKEN2,admin:TOKEN3` (commas or newlines between grants). */
export function parseTokens (text: string): TokenGrant[] {
  const grants: TokenGrant[] = []
  for (const part of text.split(/[,\n]/)) {
    const item = part.trim()
    if (item === '') continue
    const colon = item.indexOf(':')
    const scope = item.slice(0, colon) as Scope
    const token = item.slice(colon + 1)
    if (colon < 0 || !SCOPES.includes(scope) || token.length < 8) {
      throw new Error(`bad token grant "${item.slice(0, Math.max(colon, 0))}:…": expected SCOPE:TOKEN with SCOPE one of ${SCOPES.join(', ')} and a token of at least 8 characters`)
    }
    grants.push({ scope, token })
  }
  return grants
}

// The scheme name is case-insensitive (RFC 9110): Bearer, bearer and BEARER all count.
const BEARER = /^bearer +(\S+) *$/i

const digest = (token: string): Buffer => createHash('sha256').update(token).digest()

export class TokenChecker {
  private readonly grants: Array<{ scope: Scope, digest: Buffer }>
  /** Failed attempts by client address; unset, they are not limited. */
  private readonly failures?: AuthFailureTracker

  constructor (grants: readonly TokenGrant[], private readonly protectMetrics: boolean, failureLimits?: AuthFailureLimits) {
    this.grants = grants.map(g => ({ scope: g.scope, digest: digest(g.token) }))
    if (failureLimits !== undefined) this.failures = new AuthFailureTracker(failureLimits)
  }

  get enabled (): boolean {
    return this.grants.length > 0
  }

  /** The indexes, among `candidates`, of the grants a presented token matches. Constant time for each. */
  private matchingGrants (token: string, candidates: Iterable<number>): number[] {
    const presented = digest(token)
    const matched: number[] = []
    for (const index of candidates) {
      if (timingSafeEqual(presented, this.grants[index].digest)) matched.push(index)
    }
    return matched
  }

  check (access: RouteAccess, request: FastifyRequest, reply: FastifyReply): void {
    if (!this.enabled || access === 'open' || (access === 'metrics' && !this.protectMetrics)) return
    const needed: Scope = access === 'metrics' ? 'read' : access
    const token = BEARER.exec(request.headers.authorization ?? '')?.[1] ?? ''
    const blockedFor = this.failures?.blockedFor(request.ip) ?? 0
    // Past the limit a token is compared only with those this address has shown it holds, so
    // guessing from it tells nothing until the window ends.
    const candidates = blockedFor > 0 ? this.failures?.grantsUsedBy(request.ip) ?? [] : this.grants.keys()
    const matched = token === '' ? [] : this.matchingGrants(token, candidates)
    if (matched.length === 0) {
      if (blockedFor > 0) {
        reply.header('retry-after', String(blockedFor))
        throw new TooManyAuthFailuresError(this.failures?.limits.perMinute, blockedFor)
      }
      this.failures?.failed(request.ip)
      reply.header('www-authenticate', 'Bearer realm="vecwal"')
      throw new UnauthorizedError()
    }
    this.failures?.succeeded(request.ip, matched)
    if (!matched.some(index => GRANTS[this.grants[index].scope].has(needed))) throw new ForbiddenError(needed)
  }
}
