"""A judgment's project and annotator are held by one composite foreign key; three redundant indexes go.

(annotator_id, project_id) → annotator (id, project_id) replaces the two single-column foreign keys (project,
annotator): one check a judgment instead of two, and it holds more, that a judgment's annotator is of the
judgment's project. Django still cascades deletes along both fields (`on_delete` is Django's; `db_constraint=False`
only leaves the single-column constraints out of the database). The indexes on judgment.project_id,
judgment.comparison_id and judgmentrevision.judgment_id go: the (project, annotator), unique (comparison,
annotator) and unique (judgment, number) indexes lead with those columns. Adding the key checks existing rows: it
fails, naming the constraint, if a stored judgment's annotator were of another project. See
curation/importers/README.md.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0008_app_split_release_models'),
        ('projects', '0002_annotator_unique_id_project'),
    ]

    operations = [
        migrations.AlterField(
            model_name='judgment',
            name='annotator',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='judgments', to='projects.annotator'),
        ),
        migrations.AlterField(
            model_name='judgment',
            name='comparison',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='judgments', to='annotate.comparison'),
        ),
        migrations.AlterField(
            model_name='judgment',
            name='project',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='judgments', to='projects.project'),
        ),
        migrations.AlterField(
            model_name='judgmentrevision',
            name='judgment',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='revisions', to='annotate.judgment'),
        ),
        migrations.RunSQL(
            "ALTER TABLE annotate_judgment ADD CONSTRAINT judgment_annotator_of_project"
            " FOREIGN KEY (annotator_id, project_id) REFERENCES annotate_annotator (id, project_id)"
            " DEFERRABLE INITIALLY DEFERRED",
            "ALTER TABLE annotate_judgment DROP CONSTRAINT judgment_annotator_of_project",
        ),
    ]
