import { useQuery } from 'urql';
import { type Filter, operations } from '../operations';

interface Dimensions {
  __type: { inputFields: { name: string }[] } | null;
}

// One field per filterable dimension; values separated by commas. An empty field is no
// condition on that dimension.
export function FilterFields({ filter, onChange }: { filter: Filter; onChange: (f: Filter) => void }) {
  const [{ data }] = useQuery<Dimensions>({ query: operations.FilterDimensions });
  const dimensions = data?.__type?.inputFields.map((field) => field.name) ?? [];
  return (
    <fieldset className="filters">
      <legend>Filter</legend>
      {dimensions.map((dimension) => (
        <label key={dimension}>
          {dimension}{' '}
          <input
            data-testid={`filter-${dimension}`}
            placeholder="any"
            defaultValue={(filter[dimension] ?? []).join(',')}
            onBlur={(event) => {
              const values = event.target.value.split(',').map((v) => v.trim()).filter(Boolean);
              const next = { ...filter };
              if (values.length) next[dimension] = values;
              else delete next[dimension];
              onChange(next);
            }}
          />
        </label>
      ))}
    </fieldset>
  );
}

export const filterOrNull = (filter: Filter): Filter | null =>
  Object.keys(filter).length ? filter : null;
