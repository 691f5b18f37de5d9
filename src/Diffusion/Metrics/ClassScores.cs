using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Diffusion.Metrics;

/// <summary>The scores of the samples asked for one class: their count, the reference's, FID within the class and the classifier's accuracy.</summary>
public sealed record ClassScore(int Class, string Name, long N, long ReferenceN, double? Fid, double? Accuracy);

/// <summary>
/// Per-class scores of a class-conditional model's samples (<c>diffusion eval --labels</c>): for each class c asked for,
/// the Fréchet distance between the features of the samples of class c and those of the reference examples of class
/// c, and — with a classifier (the project's <c>classifier:DATASET</c>) — the fraction of them it classifies as c.
/// Samples of the null class (unconditional) count in neither. FID of a class is computed from its own rows only, so
/// with few samples per class it is biased upwards (compare classes at equal counts).
/// </summary>
public sealed class ClassScores
{
    public required IReadOnlyList<ClassScore> PerClass { get; init; }
    /// <summary>The fraction of all class-asked samples classified as the class asked for; null without a classifier.</summary>
    public double? Accuracy { get; init; }
    /// <summary>The classifier the accuracy comes from, e.g. classifier:fashion-mnist.</summary>
    public string? Classifier { get; init; }

    /// <param name="sampleFeatures">[N, F] features of the samples.</param>
    /// <param name="sampleLabels">The class each sample was asked for (K = the null class, skipped).</param>
    /// <param name="referenceFeatures">[M, F] features of the reference examples (null: no per-class FID).</param>
    /// <param name="referenceLabels">Their classes.</param>
    /// <param name="predicted">The classifier's class for each sample (null: no accuracy).</param>
    /// <param name="classes">Number of classes K (labels 0 … K−1).</param>
    /// <param name="names">The class names (null, or missing entries: the class index).</param>
    /// <param name="classifier">The classifier's name, e.g. classifier:fashion-mnist (kept only when <paramref name="predicted"/> is given).</param>
    public static ClassScores Compute(Tensor sampleFeatures, long[] sampleLabels, Tensor? referenceFeatures, long[]? referenceLabels,
                                      long[]? predicted, int classes, IReadOnlyList<string>? names, string? classifier)
    {
        var per = new List<ClassScore>();
        long correct = 0, asked = 0;
        for (int c = 0; c < classes; c++)
        {
            var rows = Enumerable.Range(0, sampleLabels.Length).Where(i => sampleLabels[i] == c).Select(i => (long)i).ToArray();
            if (rows.Length == 0) continue;
            double? fid = null;
            long refN = 0;
            if (referenceFeatures is not null && referenceLabels is not null)
            {
                var refRows = Enumerable.Range(0, referenceLabels.Length).Where(i => referenceLabels[i] == c).Select(i => (long)i).ToArray();
                refN = refRows.Length;
                if (rows.Length >= 2 && refRows.Length >= 2)
                {
                    using var scope = NewDisposeScope();
                    using var a = FeatureStatistics.FromFeatures(sampleFeatures.index_select(0, tensor(rows)));
                    using var b = FeatureStatistics.FromFeatures(referenceFeatures.index_select(0, tensor(refRows)));
                    fid = FrechetDistance.Compute(a, b);
                }
            }
            double? acc = null;
            if (predicted is not null)
            {
                long ok = rows.Count(i => predicted[i] == c);
                acc = ok / (double)rows.Length;
                correct += ok;
                asked += rows.Length;
            }
            string name = names is not null && c < names.Count ? names[c] : c.ToString(CultureInfo.InvariantCulture);
            per.Add(new ClassScore(c, name, rows.Length, refN, fid, acc));
        }
        return new ClassScores { PerClass = per, Accuracy = predicted is null || asked == 0 ? null : correct / (double)asked, Classifier = predicted is null ? null : classifier };
    }

    /// <summary>Adds "classifier_accuracy", "classifier" and "per_class" (a list of {class, name, n, reference_n, fid, accuracy}) to <paramref name="o"/>.</summary>
    public void AddTo(JsonObject o)
    {
        if (Accuracy is double acc) { o["classifier_accuracy"] = acc; o["classifier"] = Classifier; }
        var list = new JsonArray();
        foreach (var s in PerClass)
            list.Add(new JsonObject
            {
                ["class"] = s.Class, ["name"] = s.Name, ["n"] = s.N, ["reference_n"] = s.ReferenceN,
                ["fid"] = s.Fid is double f ? f : null, ["accuracy"] = s.Accuracy is double a ? a : null,
            });
        o["per_class"] = list;
    }

    public string ToText(string features)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        if (Accuracy is double acc) sb.AppendLine(c, $"accuracy   {acc,12:F4}   [{Classifier}, n={PerClass.Sum(s => s.N)}: fraction classified as the class asked for]");
        sb.AppendLine(c, $"per class  {"fid",12} {"accuracy",9}      n  reference   [{features}]");
        foreach (var s in PerClass)
            sb.AppendLine(c, $"  {s.Class,3} {Trim(s.Name),-14} {(s.Fid is double f ? f.ToString("F4", c) : "–"),10} {(s.Accuracy is double a ? a.ToString("F4", c) : "–"),9} {s.N,6} {s.ReferenceN,10}");
        return sb.ToString();
    }

    private static string Trim(string s) => s.Length <= 14 ? s : s[..13] + "…";
}
