-- jurisdiction.sql: each normalised voice event → its jurisdiction (local, intrastate, interstate,
-- international, toll_free, premium, n11) from the called number, and the called area's state.
-- Inputs: rating_input (the mediated events being rated), npa_nxx (reference: NANP NPA / NPA-NXX → country, state,
-- local area; an NPA-NXX row wins over its NPA's row).
-- Rules, first match wins: N11 service codes (211…911) → n11; NPA 800/833/844/855/866/877/888 → toll_free;
-- NPA 900 → premium; a non-NANP country code, or a NANP NPA of another country (e.g. 876 Jamaica) →
-- international; both ends in the same local area → local; same state → intrastate; else interstate.
-- The calling end is the charged number's NPA-NXX (its state falls back to the line's service state).
-- A NANP number whose NPA is not in npa_nxx has no jurisdiction (null): only prefix rates can price it.

with

voice as (
    select
        file_id,
        line_no,
        service_state,
        charged_number,
        called_number,
        case when called_number similar to '\+1[0-9]{10}' then substr(called_number, 3, 3) end as called_npa,
        case when called_number similar to '\+1[0-9]{10}' then substr(called_number, 6, 3) end as called_nxx,
        case when charged_number similar to '\+1[0-9]{10}' then substr(charged_number, 3, 3) end as caller_npa,
        case when charged_number similar to '\+1[0-9]{10}' then substr(charged_number, 6, 3) end as caller_nxx
    from rating_input
    where service = 'voice'
),

npa_areas as (
    select npa, country, state, local_area from npa_nxx where nxx is null
),

nxx_areas as (
    select npa, nxx, country, state, local_area from npa_nxx where nxx is not null
),

areas as (
    select
        voice.*,
        coalesce(called_nxx_area.country, called_npa_area.country) as called_country,
        coalesce(called_nxx_area.state, called_npa_area.state) as called_state,
        coalesce(called_nxx_area.local_area, called_npa_area.local_area) as called_local_area,
        coalesce(caller_nxx_area.state, caller_npa_area.state, voice.service_state) as caller_state,
        coalesce(caller_nxx_area.local_area, caller_npa_area.local_area) as caller_local_area
    from voice
    left join nxx_areas as called_nxx_area
        on called_nxx_area.npa = voice.called_npa and called_nxx_area.nxx = voice.called_nxx
    left join npa_areas as called_npa_area
        on called_npa_area.npa = voice.called_npa
    left join nxx_areas as caller_nxx_area
        on caller_nxx_area.npa = voice.caller_npa and caller_nxx_area.nxx = voice.caller_nxx
    left join npa_areas as caller_npa_area
        on caller_npa_area.npa = voice.caller_npa
)

select
    file_id,
    line_no,
    called_state,
    case
        when called_number similar to '[2-9]11' then 'n11'
        when called_npa in ('800', '833', '844', '855', '866', '877', '888') then 'toll_free'
        when called_npa = '900' then 'premium'
        when called_number like '+%' and called_number not like '+1%' then 'international'
        when called_country is not null and called_country <> 'US' then 'international'
        when called_state is null then null
        when called_local_area = caller_local_area then 'local'
        when called_state = caller_state then 'intrastate'
        else 'interstate'
    end as jurisdiction
from areas
