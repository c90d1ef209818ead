-- title: File sequence gaps
-- question: Which file (or EMI pack) sequence numbers are missing between the first and last a source has sent — files that never arrived?
-- param: cycle varchar  the bill cycle, YYYY-MM (gaps are over all files received so far)
-- columns: source_id, kind, qualifier, missing_sequence_no, as_of_cycle
with

ranges as (
    select source_id, kind, qualifier, min(sequence_no) as first_no, max(sequence_no) as last_no
    from file_sequences
    group by all
),

expected as (
    select source_id, kind, qualifier, unnest(range(first_no, last_no + 1)) as sequence_no
    from ranges
)

select
    expected.source_id,
    expected.kind,
    expected.qualifier,
    expected.sequence_no as missing_sequence_no,
    $cycle as as_of_cycle
from expected
anti join file_sequences using (source_id, kind, qualifier, sequence_no)
order by expected.source_id, expected.kind, expected.qualifier, expected.sequence_no
