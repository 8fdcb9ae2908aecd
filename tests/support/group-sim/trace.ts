import { BondMsg } from '../../../src/groups/bond.ts'

/** Short names of the Raft message codes, for traces. */
const RAFT_TYPES = [
  'append',
  'appendResp',
  'hb',
  'hbResp',
  'vote',
  'voteResp',
  'snapshot',
  'hello',
  'concede',
]

export function describeFrame(kind: number, body: unknown): string {
  const b = body as unknown[]
  switch (kind) {
    case BondMsg.Raft: {
      const type = RAFT_TYPES[b[0] as number]
      const rest = b.slice(3).map((x) => (Array.isArray(x) ? `[${x.length}]` : String(x)))
      return `raft ${type} t${b[1]} ${rest.join(' ')}`
    }
    case BondMsg.Request:
      return `request #${b[0]} kind ${b[1]}`
    case BondMsg.Response:
      return `response #${b[0]} ${b[1] ? `ok ${JSON.stringify(b[2])?.slice(0, 40)}` : `refused ${b[2]}`}`
    default:
      return `kind ${kind}`
  }
}

export function format(formatter: string, args: unknown[]): string {
  let i = 0
  return formatter.replace(/%[sdoOj]/g, () => String(args[i++]))
}
