import json,statistics,sys
rounds=int(sys.argv[1]) if len(sys.argv)>1 else 8
res={}
for which in ['before','after']:
    for r in range(1,rounds+1):
        d=json.load(open(f'{which}-{r}.json'))
        for row in d['training']:
            res.setdefault((row['workload'],which),[]).append(row['stepMicroseconds'])
for w in ['small-128','small-1024']:
    b=res[(w,'before')]; a=res[(w,'after')]
    pairs=[x/y for x,y in zip(a,b)]
    print(f"{w}: before {statistics.median(b):.0f} µs, after {statistics.median(a):.0f} µs, after/before {statistics.median(a)/statistics.median(b):.3f}; round by round {' '.join(f'{p:.2f}' for p in pairs)}")
    print('   before', ' '.join(f'{x:.0f}' for x in b))
    print('   after ', ' '.join(f'{x:.0f}' for x in a))
