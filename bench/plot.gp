# bench/plot.gp — one bar chart per (workload, metric), called by bench/report.py:
#   gnuplot -e "datafile='x.dat'; outfile='x.png'; ttl='...'; ylab='...'; npeers=N" bench/plot.gp
# The data file has a header row, then one row per case: "case" then, per peer, median min max
# ("?" where a peer has no value). Bars are medians; the error bars span min..max over the repetitions.
set terminal pngcairo size 1200,600 noenhanced font "sans,10"
set output outfile
set datafile missing "?"
set title ttl
set ylabel ylab
set yrange [0:*]
set grid ytics
set key outside right top
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -20 nomirror
plot for [i=1:npeers] datafile using (column(3*i-1)):(column(3*i)):(column(3*i+1)):xtic(1) title columnheader(3*i-1)
