/** A sorted-set reply WITHSCORES (member, score, member, score, …) as pairs, scores as numbers. */
export function scoredMembers(reply: readonly string[]): Array<{ member: string; score: number }> {
  const pairs: Array<{ member: string; score: number }> = [];
  for (let i = 0; i + 1 < reply.length; i += 2) pairs.push({ member: reply[i] as string, score: Number(reply[i + 1]) });
  return pairs;
}
