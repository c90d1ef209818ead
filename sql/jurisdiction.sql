-- jurisdiction.sql: the distinct numbers of the events being rated (every called number, and the charged numbers
-- of the voice events) → each number's number no., its digits, its area (state, local area) and the jurisdiction
-- the number decides alone when it is called (n11, toll_free, premium, international); sql/rating.sql compares a
-- call's two areas for the rest (local, intrastate, interstate), and keys its destination lookup on the called
-- number's no. (an integer) instead of its digits. A number is classified once, not once per call (~20k called and
-- ~30k charged numbers for ~1M calls).
-- Inputs: rating_input (the mediated events being rated), npa_nxx (reference: NANP NPA / NPA-NXX → country, state,
-- local area; an NPA-NXX row wins over its NPA's row).
-- Rules, first match wins: N11 service codes (211…911) → n11; NPA 800/833/844/855/866/877/888 → toll_free;
-- NPA 900 → premium; a non-NANP country code, or a NANP NPA of another country (e.g. 876 Jamaica) →
-- international; both ends in the same local area → local; same state → intrastate; else interstate.
-- The calling end is the charged number's NPA-NXX (its state falls back to the line's service state).
-- A NANP number whose NPA is not in npa_nxx has no jurisdiction (null): only prefix rates can price it.
-- Output: one row per distinct number (number_no from 1 — no. 0 is kept for an event without a called number —,
-- number, digits: the number without its leading '+', area_state, local_area, called_jurisdiction). Only voice
-- calls read the areas and the jurisdiction; every event reads its called number's no. and digits.

with

-- each number once, whichever end of a call it is at, numbered: its NANP NPA and NXX (a +1 number of ten digits),
-- else none. The number no. is a join key within one pass of sql/rating.sql only (its order is not kept)
numbers as (
    select
        row_number() over () as number_no,
        number,
        case when number similar to '\+1[0-9]{10}' then substr(number, 3, 3) end as npa,
        case when number similar to '\+1[0-9]{10}' then substr(number, 6, 3) end as nxx
    from (
        select called_number as number from rating_input where called_number is not null
        union
        select charged_number as number from rating_input where service = 'voice' and charged_number is not null
    )
),

npa_areas as (
    select npa, country, state, local_area from npa_nxx where nxx is null
),

nxx_areas as (
    select npa, nxx, country, state, local_area from npa_nxx where nxx is not null
)

select
    numbers.number_no,
    numbers.number,
    ltrim(numbers.number, '+') as digits,
    coalesce(nxx_area.state, npa_area.state) as area_state,
    coalesce(nxx_area.local_area, npa_area.local_area) as local_area,
    -- the first five rules: the called number alone decides
    case
        when numbers.number similar to '[2-9]11' then 'n11'
        when numbers.npa in ('800', '833', '844', '855', '866', '877', '888') then 'toll_free'
        when numbers.npa = '900' then 'premium'
        when numbers.number like '+%' and numbers.number not like '+1%' then 'international'
        when coalesce(nxx_area.country, npa_area.country) <> 'US' then 'international'
    end as called_jurisdiction
from numbers
left join nxx_areas as nxx_area
    on nxx_area.npa = numbers.npa and nxx_area.nxx = numbers.nxx
left join npa_areas as npa_area
    on npa_area.npa = numbers.npa
