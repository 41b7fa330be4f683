// Optional bearer tokens with scopes. Each route names the scope it needs in its config; with no
// tokens configured every route is open (and the service says so at start).
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ForbiddenError, UnauthorizedError } from './errors.js'

export type Scope = 'read' | 'write' | 'admin'
/** What a route needs: a scope, or 'open' (health; metrics unless protected). */
export type RouteAccess = Scope | 'open' | 'metrics'

const SCOPES: readonly Scope[] = ['read', 'write', 'admin']

/** admin may do everything; read and write only their own. */
const GRANTS: Record<Scope, ReadonlySet<Scope>> = {
  read: new Set(['read']),
  write: new Set(['write']),
  admin: new Set(['read', 'write', 'admin'])
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

  constructor (grants: readonly TokenGrant[], private readonly protectMetrics: boolean) {
    this.grants = grants.map(g => ({ scope: g.scope, digest: digest(g.token) }))
  }

  get enabled (): boolean {
    return this.grants.length > 0
  }

  /** The scopes a presented token carries. Compares against every token, in constant time each. */
  private scopesOf (token: string): Set<Scope> {
    const presented = digest(token)
    const scopes = new Set<Scope>()
    for (const grant of this.grants) {
      if (timingSafeEqual(presented, grant.digest)) for (const s of GRANTS[grant.scope]) scopes.add(s)
    }
    return scopes
  }

  check (access: RouteAccess, request: FastifyRequest, reply: FastifyReply): void {
    if (!this.enabled || access === 'open' || (access === 'metrics' && !this.protectMetrics)) return
    const needed: Scope = access === 'metrics' ? 'read' : access
    const token = BEARER.exec(request.headers.authorization ?? '')?.[1] ?? ''
    const scopes = token === '' ? new Set<Scope>() : this.scopesOf(token)
    if (scopes.size === 0) {
      reply.header('www-authenticate', 'Bearer realm="vecwal"')
      throw new UnauthorizedError()
    }
    if (!scopes.has(needed)) throw new ForbiddenError(needed)
  }
}
